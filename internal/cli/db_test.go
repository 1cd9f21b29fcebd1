package cli

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// osvTestdata is internal/vulndb's folder of real OSV records.
func osvTestdata(t *testing.T, dir string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "vulndb", "testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// zipOf zips the *.json files of dir into DEST/<name>/all.zip.
func zipOf(t *testing.T, dir, dest, name string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no records in %s", dir)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create(filepath.Base(f))
		w.Write(data)
	}
	zw.Close()
	p := filepath.Join(dest, name, "all.zip")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type dbStatusJSON struct {
	Path       string
	Records    int
	Withdrawn  int
	AgeSeconds int64
	Stale      bool
	Sources    []struct {
		Name    string
		URL     string
		Records int
		Skipped int
	}
}

func dbStatus(t *testing.T, db string) dbStatusJSON {
	t.Helper()
	stdout, stderr, code := run(t, "db", "status", "--db", db, "--format", "json")
	if code != 0 {
		t.Fatalf("db status: exit %d: %s", code, stderr)
	}
	var st dbStatusJSON
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("decoding db status: %v\n%s", err, stdout)
	}
	return st
}

func TestDBImportAndStatus(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db", "osv.db")
	goZip := zipOf(t, osvTestdata(t, "osv/Go"), dir, "Go")
	// a Debian folder with a malformed record among the real ones
	deb := filepath.Join(dir, "Debian")
	os.MkdirAll(deb, 0o755)
	for _, src := range []string{"osv/Debian/DEBIAN-CVE-2020-10543.json", "osv/Debian/DEBIAN-CVE-2026-109518.json", "malformed/GO-9999-0001.json"} {
		data, _ := os.ReadFile(osvTestdata(t, src))
		os.WriteFile(filepath.Join(deb, filepath.Base(src)), data, 0o644)
	}

	stdout, stderr, code := run(t, "db", "import", "--db", db, goZip, deb, "ghsa="+osvTestdata(t, "osv/npm"))
	if code != 0 {
		t.Fatalf("db import: exit %d: %s", code, stderr)
	}
	want := "Go: 5 records (5 new, 0 updated, 0 unchanged, 0 skipped)\n" +
		"Debian: 2 records (2 new, 0 updated, 0 unchanged, 1 skipped)\n" +
		"ghsa: 7 records (7 new, 0 updated, 0 unchanged, 0 skipped)\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if !strings.Contains(stderr, "warning: Debian: skipped GO-9999-0001.json: decoding OSV JSON") {
		t.Errorf("stderr does not name the malformed record: %s", stderr)
	}

	// again: nothing written
	stdout, _, _ = run(t, "db", "import", "--db", db, goZip)
	if stdout != "Go: 5 records (0 new, 0 updated, 5 unchanged, 0 skipped)\n" {
		t.Errorf("second import: %s", stdout)
	}

	st := dbStatus(t, db)
	if st.Records != 14 || st.Withdrawn != 1 || len(st.Sources) != 3 || st.Stale || st.Path != db {
		t.Errorf("status = %+v", st)
	}
	if s := st.Sources[0]; s.Name != "Debian" || s.Records != 2 || s.Skipped != 1 || s.URL != deb {
		t.Errorf("Debian source = %+v", s)
	}

	table, stderr, code := run(t, "db", "status", "--db", db)
	if code != 0 || !strings.Contains(table, "14 (1 withdrawn)") || !strings.Contains(table, "SOURCE") || !strings.Contains(table, goZip) {
		t.Errorf("status table (exit %d, %s):\n%s", code, stderr, table)
	}
	if stderr != "" {
		t.Errorf("fresh database: stderr = %q", stderr)
	}
	_, stderr, code = run(t, "db", "status", "--db", db, "--max-age", "1ns")
	if code != 0 || !strings.Contains(stderr, "warning: the advisory database was last updated") {
		t.Errorf("stale database: exit %d, stderr %q", code, stderr)
	}
	_, stderr, _ = run(t, "db", "status", "--db", db, "--max-age", "1ns", "-q")
	if stderr != "" {
		t.Errorf("--quiet: stderr = %q", stderr)
	}
}

func TestDBStatusMissing(t *testing.T) {
	db := filepath.Join(t.TempDir(), "none.db")
	_, stderr, code := run(t, "db", "status", "--db", db)
	if code != ExitError || !strings.Contains(stderr, "no advisory database at "+db) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("db status created %s", db)
	}
}

func TestDBPathFromEnvironment(t *testing.T) {
	db := filepath.Join(t.TempDir(), "env.db")
	t.Setenv("BULWARK_DB", db)
	if _, stderr, code := run(t, "db", "import", osvTestdata(t, "osv/npm")); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("BULWARK_DB not used: %v", err)
	}
}

func TestDBUpdate(t *testing.T) {
	dir := t.TempDir()
	zipPath := zipOf(t, osvTestdata(t, "osv/npm"), dir, "npm")
	zipData, _ := os.ReadFile(zipPath)
	mux := http.NewServeMux()
	mux.HandleFunc("/npm/all.zip", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Write(zipData)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	db := filepath.Join(dir, "osv.db")

	stdout, stderr, code := run(t, "db", "update", "--db", db, "--source", srv.URL+"/npm/all.zip")
	if code != 0 || stdout != "npm: 7 records (7 new, 0 updated, 0 unchanged, 0 skipped)\n" {
		t.Fatalf("first update: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, _, code = run(t, "db", "update", "--db", db, "--source", srv.URL+"/npm/all.zip")
	if code != 0 || stdout != "npm: not modified since the last update\n" {
		t.Errorf("second update: exit %d, stdout %q", code, stdout)
	}

	// one source fails: the others are imported, the command fails
	stdout, stderr, code = run(t, "db", "update", "--db", db,
		"--source", srv.URL+"/Nope/all.zip", "--source", "Go="+osvTestdata(t, "osv/Go"))
	if code != ExitError || !strings.Contains(stdout, "Go: 5 records (5 new") ||
		!strings.Contains(stderr, "404 Not Found") || !strings.Contains(stderr, "1 of 2 sources failed (Nope)") {
		t.Errorf("update with a failing source: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if st := dbStatus(t, db); st.Records != 12 {
		t.Errorf("records after the partial update = %d, want 12", st.Records)
	}
}

func TestDBExportPushPull(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "osv.db")
	if _, stderr, code := run(t, "db", "import", "--db", db, osvTestdata(t, "osv/Go"), osvTestdata(t, "osv/npm")); code != 0 {
		t.Fatalf("import: %s", stderr)
	}

	exported := filepath.Join(dir, "export", "copy.db")
	os.MkdirAll(filepath.Dir(exported), 0o755)
	if _, stderr, code := run(t, "db", "export", "--db", db, "-o", exported); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if st := dbStatus(t, exported); st.Records != 12 || len(st.Sources) != 2 {
		t.Errorf("exported database status = %+v", st)
	}
	if _, stderr, code := run(t, "db", "export", "--db", db); code != ExitError || !strings.Contains(stderr, "needs -o FILE") {
		t.Errorf("export without -o: exit %d, %s", code, stderr)
	}

	reg := registrytest.New(t)
	ref := reg.Ref("security/bulwark-db:1")
	stdout, stderr, code := run(t, "db", "push", "--db", db, ref)
	if code != 0 || !strings.HasPrefix(stdout, "pushed "+ref+"@sha256:") {
		t.Fatalf("push: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	pulled := filepath.Join(dir, "airgap", "osv.db")
	stdout, stderr, code = run(t, "db", "pull", "--db", pulled, ref)
	if code != 0 || !strings.Contains(stdout, "into "+pulled+": 12 records") {
		t.Fatalf("pull: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if st := dbStatus(t, pulled); st.Records != 12 || len(st.Sources) != 2 {
		t.Errorf("pulled database status = %+v", st)
	}
}
