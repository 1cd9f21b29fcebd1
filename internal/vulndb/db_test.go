package vulndb

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenCreatesFileAndSchema(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "cache", "bulwark", "vulndb")
	db, err := Open(filepath.Join(dir, "osv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for p, want := range map[string]os.FileMode{dir: 0o755 | os.ModeDir, db.Path(): 0o644} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	var v, page int
	var mode string
	db.sql.QueryRow("PRAGMA user_version").Scan(&v)
	db.sql.QueryRow("PRAGMA page_size").Scan(&page)
	db.sql.QueryRow("PRAGMA journal_mode").Scan(&mode)
	if v != SchemaVersion || v != len(migrations) || page != pageSize || mode != "wal" {
		t.Errorf("user_version %d, page_size %d, journal_mode %s", v, page, mode)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "osv.db")
	raw, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	raw.Exec("PRAGMA user_version = 99")
	raw.Close()
	_, err = Open(p)
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Errorf("Open of a newer database: err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	db := openTestDB(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	dir := t.TempDir()
	mustImport(t, db, ParseSource(writeZip(t, dir, "Go", append(testRecords(t, "osv/Go"), testRecords(t, "malformed")...))))
	now = now.Add(time.Hour)
	mustImport(t, db, ParseSource(writeZip(t, dir, "npm", testRecords(t, "osv/npm"))))
	now = now.Add(2 * time.Hour)

	st, err := db.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 12 || st.Withdrawn != 1 || len(st.Sources) != 2 {
		t.Errorf("status = %+v", st)
	}
	if st.Age != 2*time.Hour || !st.Updated.Equal(now.Add(-2*time.Hour)) {
		t.Errorf("age = %v, updated = %v", st.Age, st.Updated)
	}
	g := st.Sources[0]
	if g.Name != "Go" || g.Records != 5 || g.Skipped != 2 || !strings.HasSuffix(g.URL, "/Go/all.zip") {
		t.Errorf("Go source = %+v", g)
	}
	if st.Size <= 0 || st.Packages != 11 {
		t.Errorf("size = %d, packages = %d", st.Size, st.Packages)
	}
}

// Lookups keep answering, from the old data, while an import writes.
func TestLookupDuringImport(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	src := ParseSource(writeZip(t, dir, "npm", testRecords(t, "osv/npm")))
	mustImport(t, db, src)
	rewriteNewer(t, dir)
	defer func(n int) { progressEvery = n }(progressEvery)
	progressEvery = 5
	checked := false
	db.Progress = writerFunc(func(p []byte) (int, error) {
		// the import's transaction is open and has written 5 records
		got, err := db.Lookup(context.Background(), "npm", "lodash")
		if err != nil || len(got) != 3 || got[0].Summary == "new" {
			t.Errorf("lookup during an import = %v, %v", got, err)
		}
		checked = true
		return len(p), nil
	})
	res := mustImport(t, db, src)
	if !checked || res.Updated != 7 {
		t.Fatalf("checked %v, result %s", checked, res)
	}
	got, _ := db.Lookup(context.Background(), "npm", "lodash")
	if got[0].Summary != "new" {
		t.Errorf("after the import, summary = %q", got[0].Summary)
	}
}
