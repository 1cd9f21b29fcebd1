package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportZipAndLookup(t *testing.T) {
	db := openTestDB(t)
	zipPath := writeZip(t, t.TempDir(), "Go", testRecords(t, "osv/Go"))
	src := ParseSource(zipPath)
	if src.Name != "Go" {
		t.Fatalf("source name = %q, want Go", src.Name)
	}
	res := mustImport(t, db, src)
	if got, want := res.String(), "Go: 5 records (5 new, 0 updated, 0 unchanged, 0 skipped)"; got != want {
		t.Errorf("result = %q, want %q", got, want)
	}

	wantIDs(t, db, "Go", "golang.org/x/net", "GO-2022-0969", "GO-2023-1571")
	wantIDs(t, db, "Go", "stdlib", "GO-2022-0969", "GO-2023-1571")
	wantIDs(t, db, "Go", "golang.org/x/text", "GO-2022-1059")
	wantIDs(t, db, "Go", "gopkg.in/yaml.v2", "GHSA-r88r-gmrh-7j83")
	wantIDs(t, db, "Go", "github.com/gravitational/teleport") // withdrawn
	wantIDs(t, db, "Go", "golang.org/x/crypto")
	wantIDs(t, db, "npm", "golang.org/x/net")

	recs, err := db.Lookup(context.Background(), "Go", "golang.org/x/text")
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.Details != "" || r.SchemaVersion != "" {
		t.Errorf("stored record keeps details or schema_version: %+v", r)
	}
	if r.Summary == "" || len(r.Aliases) == 0 || len(r.Affected) == 0 || r.Published == "" || len(r.DatabaseSpecific) == 0 {
		t.Errorf("stored record lost fields matching needs: %+v", r)
	}
	if len(r.References) > maxReferences {
		t.Errorf("stored record has %d references, want at most %d", len(r.References), maxReferences)
	}
	if got := r.Affected[0].Ranges[0].Events; len(got) == 0 {
		t.Errorf("ranges lost their events")
	}
}

func TestImportDirectory(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	// a nested layout, as a checkout of an advisory repository has
	for _, m := range testRecords(t, "osv/npm") {
		sub := filepath.Join(dir, "advisories", m.name[:7])
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, m.name), m.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a record"), 0o644)
	res := mustImport(t, db, Source{Name: "github", Location: dir})
	if res.Records != 7 || res.Inserted != 7 || res.Skipped != 0 || len(res.Changed) != 7 {
		t.Errorf("result = %s, %d changed", res, len(res.Changed))
	}
	wantIDs(t, db, "npm", "lodash", "GHSA-29mw-wpgm-hmr9", "GHSA-35jh-r3h4-6jhm", "GHSA-p6mc-m468-83gw")
	wantIDs(t, db, "npm", "minimist", "GHSA-vh95-rmgr-6w4m", "GHSA-xvch-5gv4-984h")
	wantIDs(t, db, "npm", "node-fetch", "GHSA-r683-j2x4-v87g", "GHSA-w7rc-rwvf-8q5r")

	deb := filepath.Join(t.TempDir(), "Debian")
	os.MkdirAll(deb, 0o755)
	for _, m := range testRecords(t, "osv/Debian") {
		os.WriteFile(filepath.Join(deb, m.name), m.data, 0o644)
	}
	mustImport(t, db, ParseSource(deb))
	wantIDs(t, db, "Debian:12", "apt", "DEBIAN-CVE-2026-109518")
	wantIDs(t, db, "Debian:12", "perl", "DEBIAN-CVE-2020-10543")
	wantIDs(t, db, "Debian:11", "perl")

	// one JSON file is a source too
	one := filepath.Join(deb, "DEBIAN-CVE-2020-10543.json")
	res = mustImport(t, db, Source{Name: "one", Location: one})
	if res.Records != 1 || res.Unchanged != 1 {
		t.Errorf("single-file import = %s", res)
	}
}

func TestImportIncremental(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	recs := testRecords(t, "osv/npm")
	src := ParseSource(writeZip(t, dir, "npm", recs))
	mustImport(t, db, src)

	res := mustImport(t, db, src)
	if res.Inserted+res.Updated+res.Removed != 0 || res.Unchanged != 7 {
		t.Errorf("second import of the same data wrote records: %s", res)
	}
	if len(res.Changed) != 0 {
		t.Errorf("second import: %d changed records, want none", len(res.Changed))
	}

	// a newer modified time: rewritten
	for i, m := range recs {
		if m.name == "GHSA-vh95-rmgr-6w4m.json" {
			recs[i].data = edit(t, m.data, func(r map[string]any) {
				r["modified"] = "2025-01-02T03:04:05Z"
				r["summary"] = "Prototype Pollution in minimist (revised)"
			})
		}
	}
	writeZip(t, dir, "npm", recs)
	res = mustImport(t, db, src)
	if res.Updated != 1 || res.Unchanged != 6 || res.Inserted != 0 {
		t.Errorf("import with one newer record = %s, want 1 updated", res)
	}
	if len(res.Changed) != 1 || res.Changed[0].ID != "GHSA-vh95-rmgr-6w4m" || !strings.HasSuffix(res.Changed[0].Summary, "(revised)") {
		t.Errorf("changed records = %v, want the revised GHSA-vh95-rmgr-6w4m", res.Changed)
	}
	got, err := db.Lookup(context.Background(), "npm", "minimist")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ID != "GHSA-vh95-rmgr-6w4m" || !strings.HasSuffix(got[0].Summary, "(revised)") {
		t.Errorf("updated record not stored: %s %q", got[0].ID, got[0].Summary)
	}

	// a record that moved to another package: the index follows
	for i, m := range recs {
		if m.name == "GHSA-r683-j2x4-v87g.json" {
			recs[i].data = edit(t, m.data, func(r map[string]any) {
				r["modified"] = "2025-02-01T00:00:00Z"
				a := r["affected"].([]any)[0].(map[string]any)
				a["package"].(map[string]any)["name"] = "node-fetch-v2"
				r["affected"] = []any{a}
			})
		}
	}
	writeZip(t, dir, "npm", recs)
	mustImport(t, db, src)
	wantIDs(t, db, "npm", "node-fetch", "GHSA-w7rc-rwvf-8q5r")
	wantIDs(t, db, "npm", "node-fetch-v2", "GHSA-r683-j2x4-v87g")

	// a record gone from the export is removed
	writeZip(t, dir, "npm", recs[1:]) // GHSA-29mw-wpgm-hmr9, lodash
	res = mustImport(t, db, src)
	if res.Removed != 1 {
		t.Errorf("import without one record = %s, want 1 removed", res)
	}
	wantIDs(t, db, "npm", "lodash", "GHSA-35jh-r3h4-6jhm", "GHSA-p6mc-m468-83gw")
}

// The Go vulnerability database publishes modified = 0001-01-01 for every
// record; a change is then found by content.
func TestImportIncrementalWithoutModifiedTimes(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	recs := testRecords(t, "osv/Go")
	src := ParseSource(writeZip(t, dir, "Go", recs))
	mustImport(t, db, src)
	if res := mustImport(t, db, src); res.Unchanged != 5 {
		t.Errorf("second import = %s, want 5 unchanged", res)
	}
	for i, m := range recs {
		if m.name == "GO-2022-1059.json" {
			recs[i].data = edit(t, m.data, func(r map[string]any) { r["summary"] = "changed" })
		}
	}
	writeZip(t, dir, "Go", recs)
	if res := mustImport(t, db, src); res.Updated != 1 || res.Unchanged != 4 {
		t.Errorf("import with one changed record = %s, want 1 updated", res)
	}
}

// A record disappearing from one source does not remove what another source
// wrote.
func TestImportRemovesOnlyOwnRecords(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	npm := testRecords(t, "osv/npm")
	mustImport(t, db, Source{Name: "a", Location: writeZip(t, dir, "a", npm[:2])})
	mustImport(t, db, Source{Name: "b", Location: writeZip(t, dir, "b", npm[2:])})
	res := mustImport(t, db, Source{Name: "a", Location: writeZip(t, dir, "a", npm[:1])})
	if res.Removed != 1 {
		t.Errorf("result = %s, want 1 removed", res)
	}
	st, err := db.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 6 {
		t.Errorf("records = %d, want 6", st.Records)
	}
	// an export with no valid record would empty the source: refused
	_, err = db.Import(context.Background(), Source{Name: "b", Location: writeZip(t, dir, "b", testRecords(t, "malformed"))})
	if !errors.Is(err, errNoRecords) {
		t.Errorf("import of only malformed records into a filled source: err = %v, want %v", err, errNoRecords)
	}
	wantIDs(t, db, "npm", "node-fetch", "GHSA-r683-j2x4-v87g", "GHSA-w7rc-rwvf-8q5r")
}

func TestImportSkipsMalformed(t *testing.T) {
	db := openTestDB(t)
	members := append(testRecords(t, "osv/Go"), testRecords(t, "malformed")...)
	members = append(members,
		member{"dir/GO-9999-0003.json", []byte(`{"id":"GO-9999-0003","modified":"yesterday"}`)},
		member{"GO-2022-0969-copy.json", members[0].data}, // a duplicate id
		member{"README.md", []byte("not a record, ignored")},
	)
	res := mustImport(t, db, ParseSource(writeZip(t, t.TempDir(), "Go", members)))
	if res.Records != 5 || res.Skipped != 4 {
		t.Fatalf("result = %s, want 5 records and 4 skipped", res)
	}
	want := map[string]string{
		"GO-9999-0001.json":      "decoding OSV JSON",
		"GO-9999-0002.json":      "GO-9999-0002: affected[0]: package has no ecosystem or name",
		"dir/GO-9999-0003.json":  "GO-9999-0003: modified",
		"GO-2022-0969-copy.json": "duplicate of",
	}
	for _, s := range res.Skips {
		if !strings.Contains(s.Reason, want[s.Name]) || want[s.Name] == "" {
			t.Errorf("skip %s, want %q in the reason", s, want[s.Name])
		}
		delete(want, s.Name)
	}
	if len(want) != 0 {
		t.Errorf("not reported as skipped: %v", want)
	}
	st, err := db.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Sources[0].Skipped != 4 {
		t.Errorf("status: skipped = %d, want 4", st.Sources[0].Skipped)
	}
}

func TestImportListsFirstSkipsOnly(t *testing.T) {
	db := openTestDB(t)
	members := testRecords(t, "osv/npm")
	for i := range MaxSkips + 5 {
		members = append(members, member{fmt.Sprintf("bad-%02d.json", i), []byte("{")})
	}
	res := mustImport(t, db, ParseSource(writeZip(t, t.TempDir(), "npm", members)))
	if res.Skipped != MaxSkips+5 || len(res.Skips) != MaxSkips || res.Records != 7 {
		t.Errorf("skipped = %d, listed = %d, records = %d", res.Skipped, len(res.Skips), res.Records)
	}
}

func TestImportZipLimits(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	// one member over 16 MiB: skipped, the rest imported
	big := append([]byte(`{"id":"BIG-1","modified":"2024-01-01T00:00:00Z","summary":"`), bytes.Repeat([]byte("a"), maxRecordSize)...)
	big = append(big, `"}`...)
	members := append(testRecords(t, "osv/npm"), member{"BIG-1.json", big})
	res := mustImport(t, db, ParseSource(writeZip(t, dir, "npm", members)))
	if res.Records != 7 || res.Skipped != 1 || !strings.Contains(res.Skips[0].Reason, "larger than 16 MiB") {
		t.Errorf("result = %s %v, want the 16 MiB member skipped", res, res.Skips)
	}

	// a zip whose members add up past the archive limit: refused whole
	db.MaxArchiveSize = 1 << 20
	var bomb []member
	for i := range 40 {
		bomb = append(bomb, member{fmt.Sprintf("X-%d.json", i), bytes.Repeat([]byte(" "), 64<<10)})
	}
	_, err := db.Import(context.Background(), ParseSource(writeZip(t, dir, "bomb", bomb)))
	if err == nil || !strings.Contains(err.Error(), "bytes uncompressed") {
		t.Errorf("import of a zip over the limit: err = %v", err)
	}
	st, _ := db.Status(context.Background())
	if len(st.Sources) != 1 {
		t.Errorf("the refused zip was recorded: %+v", st.Sources)
	}
}

func TestImportCancelledRollsBack(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	src := ParseSource(writeZip(t, dir, "npm", testRecords(t, "osv/npm")))
	mustImport(t, db, src)

	rewriteNewer(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer func(n int) { progressEvery = n }(progressEvery)
	progressEvery = 3
	db.Progress = writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
	_, err := db.Import(ctx, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled import: err = %v, want context.Canceled", err)
	}
	got, err := db.Lookup(context.Background(), "npm", "lodash")
	if err != nil || len(got) != 3 || got[0].Summary == "new" {
		t.Errorf("after a cancelled import, lodash = %v (%v), want the old records", got, err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestParseSource(t *testing.T) {
	for in, want := range map[string]Source{
		"https://osv-vulnerabilities.storage.googleapis.com/Red%20Hat/all.zip": {"Red Hat", "https://osv-vulnerabilities.storage.googleapis.com/Red%20Hat/all.zip"},
		"/data/osv/Go/all.zip":         {"Go", "/data/osv/Go/all.zip"},
		"./exports/pypi.zip":           {"pypi", "./exports/pypi.zip"},
		"/srv/advisories/":             {"advisories", "/srv/advisories/"},
		"ghsa=/srv/advisory-database":  {"ghsa", "/srv/advisory-database"},
		"http://mirror/osv?x=1":        {"osv", "http://mirror/osv?x=1"},
		"mirror=http://mirror/all.zip": {"mirror", "http://mirror/all.zip"},
	} {
		if got := ParseSource(in); got != want {
			t.Errorf("ParseSource(%q) = %+v, want %+v", in, got, want)
		}
	}
	srcs := DefaultSources()
	if len(srcs) != 14 || srcs[3].Name != "Red Hat" || srcs[3].Location != OSVExports+"Red%20Hat/all.zip" {
		t.Errorf("DefaultSources()[3] = %+v", srcs[3])
	}
	for _, s := range srcs {
		if got := ParseSource(s.Location); got != s {
			t.Errorf("ParseSource(%q) = %+v, want %+v", s.Location, got, s)
		}
	}
}

func TestIndexKey(t *testing.T) {
	for _, c := range []struct{ eco, name, wantEco, wantName string }{
		{"Ubuntu:22.04:LTS", "openssl", "Ubuntu:22.04", "openssl"},
		{"Ubuntu:Pro:18.04:LTS", "openssl", "Ubuntu:Pro:18.04", "openssl"},
		{"Red Hat:enterprise_linux:9::appstream", "openssl", "Red Hat", "openssl"},
		{"PyPI", "Django_REST.framework", "PyPI", "django-rest-framework"},
		{"Debian:12", "perl", "Debian:12", "perl"},
		{"Go", "github.com/Masterminds/semver", "Go", "github.com/Masterminds/semver"},
	} {
		if got := indexKey(c.eco, c.name); got != (pkgKey{c.wantEco, c.wantName}) {
			t.Errorf("indexKey(%q, %q) = %v", c.eco, c.name, got)
		}
	}
}

func TestReadZipNamesAreLabels(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range []string{"../../etc/evil.json", "/abs/GO-1.json"} {
		w, _ := zw.Create(n)
		io.WriteString(w, "{}")
	}
	zw.Close()
	dir := t.TempDir()
	p := filepath.Join(dir, "x.zip")
	os.WriteFile(p, buf.Bytes(), 0o644)
	db := openTestDB(t)
	res := mustImport(t, db, Source{Name: "x", Location: p})
	if res.Skipped != 2 || res.Skips[0].Name != "../../etc/evil.json" {
		t.Errorf("result = %s %v", res, res.Skips)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "..", "etc", "evil.json")); err == nil {
		t.Error("a member name was used as a path")
	}
}
