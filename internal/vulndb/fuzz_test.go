package vulndb

import (
	"context"
	"flag"
	"fmt"
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
// The database is opened once per fuzzing process and emptied before each
// input (one transaction of DELETEs), not removed and opened again: opening
// runs the schema migrations and creates the WAL, which made one execution
// take about 100 ms. At that rate the fuzzer did nothing but minimise:
// SQLite's coverage differs a little from run to run (pools, page cache),
// so inputs often look new, and minimising one (up to -fuzzminimizetime,
// 60 s by default) at 100 ms an execution took the whole run: 0 execs/s in
// a 60 s run. Emptied in place, every input starts from the same state; on
// a tmpfs (each import ends with a WAL checkpoint, an fsync) an execution
// takes a few milliseconds. And minimising stops after 100 executions unless
// -fuzzminimizetime says otherwise: an input that only looked new is not
// worth more.
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
	dir := memDir(f)
	db, err := Open(filepath.Join(dir, "osv.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	db.Now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	zipPath := filepath.Join(dir, "fuzz.zip")
	recDir := filepath.Join(dir, "records")
	if err := os.MkdirAll(recDir, 0o755); err != nil {
		f.Fatal(err)
	}
	boundMinimization("100x")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := emptyDB(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(zipPath, zipBytes(t, []member{{"fuzz/REC.json", data}}), 0o644); err != nil {
			t.Fatal(err)
		}
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

// emptyDB deletes every row of every table, in one transaction.
func emptyDB(ctx context.Context, db *DB) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, table := range []string{"affected", "advisories", "sources", "changes", "cursors"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return fmt.Errorf("emptying %s: %w", table, err)
		}
	}
	return tx.Commit()
}

// memDir is a new directory on /dev/shm when that is a tmpfs, removed when
// the test ends, else the test's temporary directory.
func memDir(tb testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "bulwark-fuzz-*"); err == nil {
			tb.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return tb.TempDir()
}

// boundMinimization sets -fuzzminimizetime to limit unless it was given. The
// coordinator reads it when the target calls f.Fuzz.
func boundMinimization(limit string) {
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == "test.fuzzminimizetime" })
	if fl := flag.Lookup("test.fuzzminimizetime"); fl != nil && !given {
		fl.Value.Set(limit)
	}
}
