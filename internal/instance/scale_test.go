package instance_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/instance/instancetest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// 10,000 registered instances; new collateral (Intel TCB info marking the
// SGX platforms' level OutOfDate, AMD's minimum SNP SPL raised) revokes
// exactly those it should, in one transaction. bench/attest times it.
func TestRevokeTenThousand(t *testing.T) { backends(t, testRevokeTenThousand) }

func testRevokeTenThousand(t *testing.T, open func(testing.TB) *store.Store) {
	ctx := context.Background()
	st := open(t)
	st.Now = func() time.Time { return t0 }
	base := attest.SNPTCB{Bootloader: 3, SNP: 8, Microcode: 115}
	per, err := instancetest.Seed(ctx, st, instancetest.Fleet{N: 10_000, SGX: 2_000, SNPBase: base, SNPLevels: []uint8{7, 8, 9, 10}, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	p, err := attesttest.NewSGXPlatform(t0)
	if err != nil {
		t.Fatal(err)
	}
	col, _ := p.Collateral(18, false, attesttest.Level{CPUSVN: 6, PCESVN: 11, Status: "UpToDate"}, attesttest.Level{CPUSVN: 5, PCESVN: 11, Status: "OutOfDate"})
	min := base
	min.SNP = 9
	v, err := attest.New(attest.Options{Now: func() time.Time { return t0 }, IntelRoot: p.RootPEM(), SGX: col, Policy: attest.Policy{MinSNPTCB: min}})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := attest.New(attest.Options{Now: func() time.Time { return t0 }})
	tr, err := instance.New(instance.Config{Auditor: api.NewAuditor(st, ""), Verifier: old, Now: func() time.Time { return t0 },
		Logger:     slog.New(slog.DiscardHandler),
		References: func(context.Context, string) (*attest.ReferencePredicate, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Load(ctx, st); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	revoked, err := tr.UseVerifier(ctx, "system:collateral", "sha256:18", v)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	want := 2_000 + per[7] + per[8]
	if len(revoked) != want {
		t.Fatalf("revoked %d, want %d", len(revoked), want)
	}
	t.Logf("%s: revoked %d of 10,000 instances in %s", st.Dialect(), len(revoked), took)
	if took > 5*time.Second {
		t.Errorf("revoking took %s", took)
	}
	// The store agrees.
	rows, err := st.TEEInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.Status == "revoked" {
			n++
		}
	}
	if n != want {
		t.Fatalf("stored revoked %d, want %d", n, want)
	}
}
