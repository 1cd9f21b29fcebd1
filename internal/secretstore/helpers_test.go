package secretstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// storeAuditor is store.Audited as an Auditor.
type storeAuditor struct{ st *store.Store }

func (a storeAuditor) Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error {
	_, err := a.st.Audited(ctx, fn)
	return err
}

// classes is a catalogue of three classes.
type classes map[string][]string

func (c classes) ClassRegions(class string) ([]string, bool) {
	rs, ok := c[class]
	return rs, ok
}

var testClasses = classes{"pii": nil, "pii-eu": {"eu-west-1", "eu-central-1"}, "pci-pan": nil}

type workloads map[string]Workload

func (w workloads) Workload(id string) (Workload, bool) {
	x, ok := w[id]
	return x, ok
}

type grants map[string][]string

func (g grants) Granted(app, class string) bool {
	for _, c := range g[app] {
		if c == class {
			return true
		}
	}
	return false
}

var testKey = func() *seal.Key {
	k, err := seal.New(make([]byte, 32))
	if err != nil {
		panic(err)
	}
	return k
}()

// newService opens a store at path (a new one in a temporary directory
// when empty) and a Service over it with the file KEK testKey.
func newService(t testing.TB, path string, ws Workloads, gs Grants) (*Service, *store.Store) {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "bulwark.db")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(ctx, Config{Store: st, KEK: NewFileKEK(testKey), Auditor: storeAuditor{st}, Catalogue: testClasses,
		Workloads: ws, Grants: gs})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func kv(pairs ...string) Value {
	v := Value{Data: map[string]string{}}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Data[pairs[i]] = pairs[i+1]
	}
	return v
}

func auditLog(t testing.TB, st *store.Store) []store.AuditRecord {
	t.Helper()
	recs, err := st.AuditPage(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func testKeyFrom(b byte) *seal.Key {
	raw := make([]byte, 32)
	raw[0] = b
	k, err := seal.New(raw)
	if err != nil {
		panic(err)
	}
	return k
}
