package vulndb

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// Advisory finds a record by its id, not by an alias, and never a
// withdrawn one.
func TestAdvisoryByID(t *testing.T) {
	db := openTestDB(t)
	mustImport(t, db, Source{Name: "Go", Location: filepath.Join("testdata", "osv", "Go")})
	ctx := context.Background()
	r, err := db.Advisory(ctx, "GO-2022-1059")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "GO-2022-1059" || len(r.Affected) == 0 || r.Affected[0].Package.Name != "golang.org/x/text" {
		t.Errorf("record = %+v", r)
	}
	for _, id := range []string{"GO-2024-2442" /* withdrawn */, "CVE-2022-32149" /* an alias of GO-2022-1059 */, "GO-0000-0000", ""} {
		if _, err := db.Advisory(ctx, id); !errors.Is(err, ErrNoAdvisory) {
			t.Errorf("Advisory(%q) = %v, want ErrNoAdvisory", id, err)
		}
	}
}
