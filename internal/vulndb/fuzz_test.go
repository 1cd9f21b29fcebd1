package vulndb

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// FuzzImportRecord feeds arbitrary bytes through the import path, as a zip
// member and as a JSON file of a directory. An import must never fail or
// panic because of one record: it is stored (and found by Lookup) or
// skipped with a reason.
//
// Every execution goes through SQLite, whose coverage is not quite the same
// from one run to the next (pools, GC); bound the minimisation of each new
// input, or it takes the whole budget:
//
//	go test ./internal/vulndb -run '^$' -fuzz FuzzImportRecord -fuzztime 20s -fuzzminimizetime 10x
func FuzzImportRecord(f *testing.F) {
	for _, dir := range []string{"osv/Go", "osv/npm", "osv/Debian", "malformed"} {
		for _, m := range testRecords(f, dir) {
			f.Add(m.data)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","withdrawn":"2024-02-01","affected":[{"package":{"ecosystem":"PyPI","name":"Foo_Bar"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}`))
	f.Add([]byte(`{"id":"X-2","modified":"0001-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Ubuntu:22.04:LTS","name":"a"}},{"package":{"ecosystem":"Ubuntu:22.04:LTS","name":"a"}}],"database_specific":{"a":[1,2,{"b":null}]}}`))
	ctx := context.Background()
	dir := f.TempDir()
	dbPath := filepath.Join(dir, "osv.db")
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same database, paths and clock every time, so that the same
		// input takes the same path through SQLite and coverage is stable.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(dbPath + suffix)
		}
		db, err := Open(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.Now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
		zipPath := filepath.Join(dir, "fuzz.zip")
		if err := os.WriteFile(zipPath, zipBytes(t, []member{{"fuzz/REC.json", data}}), 0o644); err != nil {
			t.Fatal(err)
		}
		recDir := filepath.Join(dir, "records")
		os.MkdirAll(recDir, 0o755)
		if err := os.WriteFile(filepath.Join(recDir, "REC.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, src := range []Source{
			{Name: "zip", Location: zipPath},
			{Name: "dir", Location: recDir},
		} {
			res, err := db.Import(ctx, src)
			if err != nil {
				t.Fatalf("import of one record failed: %v", err)
			}
			if res.Records+res.Skipped != 1 {
				t.Fatalf("one record: %s", res)
			}
			r, perr := osv.Parse(data)
			if res.Skipped == 1 {
				if len(res.Skips) != 1 || res.Skips[0].Reason == "" {
					t.Fatalf("skipped without a reason: %+v", res.Skips)
				}
				continue
			}
			if perr != nil {
				t.Fatalf("stored a record osv.Parse refuses: %v", perr)
			}
			if res.Inserted+res.Updated == 0 || r.IsWithdrawn() {
				continue
			}
			for _, a := range r.Affected {
				got := lookupIDs(t, db, a.Package.Ecosystem, a.Package.Name)
				if !slices.Contains(got, r.ID) {
					t.Fatalf("Lookup(%q, %q) = %v, want %s in it", a.Package.Ecosystem, a.Package.Name, got, r.ID)
				}
			}
		}
	})
}
