package trust_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/instance/instancetest"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

// BenchmarkTEEFacts10k is the TEE condition's cost on the issuance path
// with 10,000 instances in the tracker (memory only; the workload has
// none, so every instance is looked at).
func BenchmarkTEEFacts10k(b *testing.B) {
	st, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "bulwark.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if _, err := instancetest.Seed(b.Context(), st, instancetest.Fleet{N: 10_000, SGX: 2_000, SNPLevels: []uint8{8}, Now: now}); err != nil {
		b.Fatal(err)
	}
	v, _ := attest.New(attest.Options{})
	tr, err := instance.New(instance.Config{Auditor: api.NewAuditor(st, ""), Verifier: v, Logger: slog.New(slog.DiscardHandler),
		References: func(context.Context, string) (*attest.ReferencePredicate, error) { return nil, nil }})
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Load(b.Context(), st); err != nil {
		b.Fatal(err)
	}
	p := &trust.TEEPolicy{Rules: []trust.TEERule{{Namespaces: []string{"pay"}, Kinds: []attest.Kind{attest.SNP}}}}
	facts := p.Facts(tr)
	id := spiffeid.RequireFromString("spiffe://prod.example/ns/pay/sa/api")
	w := identity.Workload{Node: "node-1", Image: "sha256:00", Namespace: "pay"}
	for b.Loop() {
		if f := facts(id, w); f == nil || f.Holds {
			b.Fatal(f)
		}
	}
}
