package vulndb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestImportSharedOSV imports the real exports in ../shared/data/osv (the
// whole Go database, plus npm and Debian subsets) and logs counts, times
// and sizes; docs/vulndb.md quotes them.
func TestImportSharedOSV(t *testing.T) {
	if testing.Short() {
		t.Skip("large import")
	}
	data := sharedOSV(t)
	db := openTestDB(t)
	ctx := context.Background()
	for _, eco := range []string{"Go", "npm", "Debian"} {
		p := filepath.Join(data, eco, "all.zip")
		if _, err := os.Stat(p); err != nil {
			t.Logf("%s: %v", eco, err)
			continue
		}
		start := time.Now()
		res := mustImport(t, db, ParseSource(p))
		st, err := db.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s in %v; database now %d bytes", res, time.Since(start).Round(time.Millisecond), st.Size)
		if eco == "Go" && (res.Records < 4000 || res.Skipped != 0) {
			t.Errorf("Go export: %s", res)
		}
	}
	start := time.Now()
	res := mustImport(t, db, ParseSource(filepath.Join(data, "Go", "all.zip")))
	t.Logf("re-import: %s in %v", res, time.Since(start).Round(time.Millisecond))
	if res.Inserted+res.Updated+res.Removed != 0 {
		t.Errorf("re-import of the same export wrote records: %s", res)
	}
	wantIDs(t, db, "Debian:12", "apt", "DEBIAN-CVE-2020-27350", "DEBIAN-CVE-2020-3810", "DEBIAN-CVE-2026-109518")
	recs, err := db.Lookup(ctx, "Go", "golang.org/x/net")
	if err != nil || len(recs) < 10 {
		t.Errorf("Lookup(Go, golang.org/x/net) = %d records, %v", len(recs), err)
	}
	t.Logf("golang.org/x/net: %d advisories", len(recs))
}

// BenchmarkLookup times one package lookup against the whole Go database
// (or the test records when ../shared is absent).
func BenchmarkLookup(b *testing.B) {
	db := openTestDB(b)
	if data, err := findSharedOSV(); err == nil {
		mustImport(b, db, ParseSource(filepath.Join(data, "Go", "all.zip")))
	} else {
		mustImport(b, db, ParseSource(writeZip(b, b.TempDir(), "Go", testRecords(b, "osv/Go"))))
	}
	ctx := context.Background()
	for _, q := range []struct{ name, pkg string }{
		{"stdlib", "stdlib"},           // the most advisories
		{"x-net", "golang.org/x/net"},  // a typical dependency
		{"absent", "example.com/none"}, // most packages of an image
	} {
		b.Run(q.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				recs, err := db.Lookup(ctx, "Go", q.pkg)
				if err != nil {
					b.Fatal(err)
				}
				n = len(recs)
			}
			b.ReportMetric(float64(n), "records")
		})
	}
}
