package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// member is one file of a zip the tests build.
type member struct {
	name string
	data []byte
}

// testRecords reads testdata/<dir>/*.json in name order.
func testRecords(t testing.TB, dir string) []member {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no records in testdata/%s: %v", dir, err)
	}
	sort.Strings(paths)
	var out []member
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{filepath.Base(p), data})
	}
	return out
}

// zipBytes builds a zip (deflate) of members.
func zipBytes(t testing.TB, members []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		w, err := zw.Create(m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeZip writes a zip of members to dir/<name>/all.zip, OSV's layout.
func writeZip(t testing.TB, dir, name string, members []member) string {
	t.Helper()
	p := filepath.Join(dir, name, "all.zip")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, zipBytes(t, members), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// openTestDB opens a new database in a temporary directory.
func openTestDB(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "vulndb", "osv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustImport(t testing.TB, db *DB, src Source) Result {
	t.Helper()
	res, err := db.Import(context.Background(), src)
	if err != nil {
		t.Fatalf("import %s: %v", src.Location, err)
	}
	return res
}

// lookupIDs returns the ids Lookup finds, in order.
func lookupIDs(t testing.TB, db *DB, ecosystem, name string) []string {
	t.Helper()
	recs, err := db.Lookup(context.Background(), ecosystem, name)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func wantIDs(t testing.TB, db *DB, ecosystem, name string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := lookupIDs(t, db, ecosystem, name); !slices.Equal(got, want) {
		t.Errorf("Lookup(%s, %s) = %v, want %v", ecosystem, name, got, want)
	}
}

// edit decodes a record, changes it and encodes it again.
func edit(t testing.TB, data []byte, change func(r map[string]any)) []byte {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	change(r)
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := osv.Parse(out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sharedOSV is ../shared/data/osv beside the repository; the test skips
// when this checkout has none.
func sharedOSV(t testing.TB) string {
	t.Helper()
	dir, err := findSharedOSV()
	if err != nil {
		t.Skipf("shared OSV data not available: %v", err)
	}
	return dir
}

func findSharedOSV() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "data", "osv")
	if _, err := os.Stat(filepath.Join(p, "Go", "all.zip")); err != nil {
		return "", err
	}
	return p, nil
}

// leftovers lists files in dir other than the database and its WAL.
func leftovers(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		switch e.Name() {
		case "osv.db", "osv.db-wal", "osv.db-shm":
		default:
			out = append(out, e.Name())
		}
	}
	return out
}

// rewriteNewer rewrites dir's npm zip with every record modified later and
// a new summary, so that a second import updates them all.
func rewriteNewer(t *testing.T, dir string) {
	t.Helper()
	recs := testRecords(t, "osv/npm")
	for i := range recs {
		recs[i].data = edit(t, recs[i].data, func(r map[string]any) {
			r["modified"] = "2030-01-01T00:00:00Z"
			r["summary"] = "new"
		})
	}
	writeZip(t, dir, "npm", recs)
}
