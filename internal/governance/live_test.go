package governance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// storeAuditor audits into a real SQLite store.
type storeAuditor struct{ st *store.Store }

func (a storeAuditor) Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error {
	_, err := a.st.Audited(ctx, fn)
	return err
}

// TestLiveCatalogue: an edited catalogue file replaces the one in force
// (audited, the change callback called); an edit that does not parse
// leaves the previous one in force.
func TestLiveCatalogue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalogue.yaml")
	base := "classes: [{name: pii-eu}]\nregulations: [{name: gdpr, classes: [pii-eu], regions: [eu-west-1]}]\n"
	os.WriteFile(path, []byte(base), 0o600)
	st, err := store.Open(ctx, filepath.Join(dir, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := NewLive(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	l.Auditor, l.Changed = storeAuditor{st}, func(context.Context) { changed++ }
	if l.Granted("checkout", "pii-eu") {
		t.Fatal("granted before the grant")
	}
	if got, err := l.Check(ctx); got || err != nil {
		t.Fatalf("unchanged file: %v %v", got, err)
	}
	later := time.Now().Add(time.Second)
	os.WriteFile(path, []byte(base+"applications: [{name: checkout, classes: [pii-eu]}]\n"), 0o600)
	os.Chtimes(path, later, later)
	if got, err := l.Check(ctx); !got || err != nil || !l.Granted("checkout", "pii-eu") || changed != 1 {
		t.Fatalf("edited file: %v %v, granted %v, changed %d", got, err, l.Granted("checkout", "pii-eu"), changed)
	}
	recs, _ := st.AuditPage(ctx, 0, 10)
	if len(recs) != 1 || recs[0].Action != "governance.catalogue" || !strings.Contains(string(recs[0].After), "sha256:") {
		t.Fatalf("audit: %+v", recs)
	}
	later = later.Add(time.Second)
	os.WriteFile(path, []byte("classes: [{name: pii-eu}]\nregulatons: []\n"), 0o600)
	os.Chtimes(path, later, later)
	if got, err := l.Check(ctx); got || err == nil || !strings.Contains(err.Error(), "stays in force") || !l.Granted("checkout", "pii-eu") {
		t.Fatalf("broken edit: %v %v", got, err)
	}
	if _, err := NewLive(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing catalogue file at start")
	}
}
