package instance_test

import (
	"context"
	"crypto/sha512"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// backends runs test on SQLite in a temporary directory and on a fresh
// PostgreSQL database (skipped without PostgreSQL unless
// BULWARK_REQUIRE_POSTGRES=1).
func backends(t *testing.T, test func(*testing.T, func(testing.TB) *store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, func(t testing.TB) *store.Store {
			st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bulwark.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
	t.Run("postgres", func(t *testing.T) {
		test(t, func(t testing.TB) *store.Store {
			st, err := store.OpenPostgres(context.Background(), pgtest.Start(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

// world is a store, a synthetic SEV-SNP platform, the image's reference
// values and a tracker over them.
type world struct {
	st    *store.Store
	clk   *clock
	snp   *attesttest.SNPPlatform
	guest attesttest.Guest
	pred  *attest.ReferencePredicate
	tr    *instance.Tracker
}

const image = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

var snpTCB = attest.SNPTCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}

func newWorld(t testing.TB, open func(testing.TB) *store.Store, pol instance.Policy) *world {
	t.Helper()
	w := &world{st: open(t), clk: &clock{t: t0}}
	w.st.Now = w.clk.Now
	var err error
	if w.snp, err = attesttest.NewSNPPlatform(t0.Add(-24*time.Hour), snpTCB); err != nil {
		t.Fatal(err)
	}
	w.guest = attesttest.Guest{Measurement: sha512.Sum384([]byte("confidential app")), SVN: 1}
	w.pred = &attest.ReferencePredicate{References: []attest.Reference{{Kind: attest.SNP, Measurement: w.guest.Measurement[:]}}}
	refs := func(ctx context.Context, img string) (*attest.ReferencePredicate, error) {
		if img != image {
			return nil, fmt.Errorf("no reference attestation for %s", img)
		}
		return w.pred, nil
	}
	w.tr, err = instance.New(instance.Config{Auditor: api.NewAuditor(w.st, ""), References: refs,
		Verifier: w.verifier(t, attest.Policy{}), Policy: pol, Now: w.clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) verifier(t testing.TB, p attest.Policy) *attest.Verifier {
	t.Helper()
	v, err := attest.New(attest.Options{Now: w.clk.Now, SNPRoots: w.snp.Roots(), Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// register challenges id and registers it with evidence from guest g
// (its REPORT_DATA set to the binding unless bind is false).
func (w *world) register(t testing.TB, id, region string, g attesttest.Guest, bind bool) (instance.Instance, error) {
	t.Helper()
	ctx := context.Background()
	c, err := w.tr.Challenge(ctx, "token:1", id)
	if err != nil {
		t.Fatal(err)
	}
	return w.registerWith(t, id, region, g, c.Nonce, bind)
}

func (w *world) registerWith(t testing.TB, id, region string, g attesttest.Guest, nonce []byte, bind bool) (instance.Instance, error) {
	t.Helper()
	if bind {
		copy(g.ReportData[:], attest.Binding(nonce, nil))
	}
	ev, err := w.snp.Evidence(g)
	if err != nil {
		t.Fatal(err)
	}
	return w.tr.Register(context.Background(), "token:1", instance.Registration{ID: id, Workload: "payments", Node: "node-1",
		Region: region, Image: image, Nonce: nonce, Evidence: *ev})
}
