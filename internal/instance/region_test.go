package instance_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func sqliteOnly(t testing.TB) *store.Store {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Region: what an attacker controlling the node's configuration can and
// cannot claim.
func TestRegionEnforcement(t *testing.T) {
	t.Run("allowed regions", func(t *testing.T) {
		w := newWorld(t, sqliteOnly, instance.Policy{Regions: []string{"eu-west", "eu-central"}})
		in, err := w.register(t, "a", "eu-west", w.guest, true)
		mustStatus(t, in, err, instance.Verified, "")
		in, err = w.register(t, "b", "us-east", w.guest, true)
		mustStatus(t, in, err, instance.Failed, attest.ReasonRegion)
	})
	t.Run("the node's word is not enough when attested regions are required", func(t *testing.T) {
		w := newWorld(t, sqliteOnly, instance.Policy{Regions: []string{"eu-west"}, RequireAttestedRegion: true})
		in, err := w.register(t, "a", "eu-west", w.guest, true)
		mustStatus(t, in, err, instance.Failed, attest.ReasonRegion)
		// The provider bound the region into HOST_DATA at launch.
		g := w.guest
		copy(g.HostData[:], instance.HostDataFor("eu-west"))
		in, err = w.register(t, "b", "eu-west", g, true)
		mustStatus(t, in, err, instance.Verified, "")
		if in.RegionSource != instance.RegionHostData {
			t.Fatalf("region source %q", in.RegionSource)
		}
		// HOST_DATA for one region does not vouch for another.
		in, err = w.register(t, "c", "us-east", g, true)
		mustStatus(t, in, err, instance.Failed, attest.ReasonRegion)
	})
	t.Run("the chip's region outranks the claim", func(t *testing.T) {
		w := newWorld(t, sqliteOnly, instance.Policy{})
		chip := hex.EncodeToString(w.snp.ChipID[:])
		var err error
		w.tr, err = instance.New(instance.Config{Auditor: api.NewAuditor(w.st, ""), References: refsFor(w),
			Verifier: w.verifier(t, attest.Policy{}), Now: w.clk.Now,
			Policy: instance.Policy{Regions: []string{"eu-west", "us-east"}, RequireAttestedRegion: true, Platforms: map[string]string{chip: "us-east"}}})
		if err != nil {
			t.Fatal(err)
		}
		w2 := w
		// A node in us-east claiming eu-west is caught by its chip ID.
		in, err := w2.register(t, "a", "eu-west", w2.guest, true)
		mustStatus(t, in, err, instance.Failed, attest.ReasonRegion)
		in, err = w2.register(t, "b", "", w2.guest, true)
		mustStatus(t, in, err, instance.Verified, "")
		if in.Region != "us-east" || in.RegionSource != instance.RegionPlatform {
			t.Fatalf("region %q from %q", in.Region, in.RegionSource)
		}
	})
}

func refsFor(w *world) instance.References {
	return func(ctx context.Context, img string) (*attest.ReferencePredicate, error) { return w.pred, nil }
}

// Intel's new TCB info marks the platform's level OutOfDate: the SGX
// instance verified under the old collateral is revoked, and one whose PCK
// is judged by a level still UpToDate is not.
func TestIntelCollateralRevokes(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteOnly, instance.Policy{})
	p, err := attesttest.NewSGXPlatform(t0)
	if err != nil {
		t.Fatal(err)
	}
	col, err := p.Collateral(17, false)
	if err != nil {
		t.Fatal(err)
	}
	sgxVerifier := func(c *attest.IntelCollateral) *attest.Verifier {
		v, err := attest.New(attest.Options{Now: w.clk.Now, IntelRoot: p.RootPEM(), SGX: c, SNPRoots: w.snp.Roots()})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := w.tr.UseVerifier(ctx, "test", "sha256:17", sgxVerifier(col)); err != nil {
		t.Fatal(err)
	}
	enc := attesttest.Enclave{MRSIGNER: [32]byte{7}, MRENCLAVE: [32]byte{9}}
	w.pred.References = append(w.pred.References, attest.Reference{Kind: attest.SGX, Measurement: enc.MRENCLAVE[:], Signer: enc.MRSIGNER[:]})
	c, err := w.tr.Challenge(ctx, "token:1", "enclave-1")
	if err != nil {
		t.Fatal(err)
	}
	copy(enc.ReportData[:], attest.Binding(c.Nonce, nil))
	q, err := p.Quote(enc)
	if err != nil {
		t.Fatal(err)
	}
	in, err := w.tr.Register(ctx, "token:1", instance.Registration{ID: "enclave-1", Workload: "kms", Image: image, Nonce: c.Nonce,
		Evidence: attest.Evidence{Kind: attest.SGX, Data: q}})
	mustStatus(t, in, err, instance.Verified, "")
	in, err = w.register(t, "vm-1", "", w.guest, true)
	mustStatus(t, in, err, instance.Verified, "")

	w.clk.Add(time.Hour)
	col18, err := p.Collateral(18, false, attesttest.Level{CPUSVN: 6, PCESVN: 11, Status: "UpToDate"}, attesttest.Level{CPUSVN: 5, PCESVN: 11, Status: "OutOfDate"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := w.tr.UseVerifier(ctx, "system:collateral", "sha256:18", sgxVerifier(col18))
	if err != nil || len(revoked) != 1 || revoked[0] != "enclave-1" {
		t.Fatalf("revoked %v, %v", revoked, err)
	}
	got, _ := w.tr.Get("enclave-1")
	if got.Status != instance.Revoked || got.Reason != string(attest.ReasonTCBOutOfDate) {
		t.Fatalf("enclave-1: %+v", got)
	}
	if got, _ := w.tr.Get("vm-1"); got.Status != instance.Verified {
		t.Fatalf("the SEV-SNP instance lost its trust to Intel collateral: %+v", got)
	}

	// A new PCK CRL revoking the platform's PCK certificate revokes the
	// enclaves that registered with it.
	if _, err := w.tr.UseVerifier(ctx, "test", "sha256:17b", sgxVerifier(col)); err != nil {
		t.Fatal(err)
	}
	c, _ = w.tr.Challenge(ctx, "token:1", "enclave-2")
	copy(enc.ReportData[:], attest.Binding(c.Nonce, nil))
	q, _ = p.Quote(enc)
	in, err = w.tr.Register(ctx, "token:1", instance.Registration{ID: "enclave-2", Workload: "kms", Image: image, Nonce: c.Nonce,
		Evidence: attest.Evidence{Kind: attest.SGX, Data: q}})
	mustStatus(t, in, err, instance.Verified, "")
	crl, _ := p.Collateral(17, true)
	revoked, err = w.tr.UseVerifier(ctx, "system:collateral", "sha256:crl", sgxVerifier(crl))
	if err != nil || len(revoked) != 1 || revoked[0] != "enclave-2" {
		t.Fatalf("revoked %v, %v", revoked, err)
	}
	if got, _ := w.tr.Get("enclave-2"); got.Reason != string(attest.ReasonTCBRevoked) {
		t.Fatalf("enclave-2: %+v", got)
	}
}

// A TDX trust domain registers through the same path (synthetic quote on
// the real one's layout; signatures and PCK chain, no TDX collateral).
func TestTDXInstance(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteOnly, instance.Policy{})
	p, err := attesttest.NewSGXPlatform(t0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.New(attest.Options{Now: w.clk.Now, IntelRoot: p.RootPEM(), AllowMissingCollateral: true, SNPRoots: w.snp.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.tr.UseVerifier(ctx, "test", "sha256:tdx", v); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../attest/testdata/tdx/quote.dat")
	if err != nil {
		t.Fatal(err)
	}
	td := attesttest.TD{MRTD: [48]byte{7}}
	w.pred.References = append(w.pred.References, attest.Reference{Kind: attest.TDX, Measurement: td.MRTD[:]})
	register := func(id string, td attesttest.TD) (instance.Instance, error) {
		c, err := w.tr.Challenge(ctx, "token:1", id)
		if err != nil {
			t.Fatal(err)
		}
		copy(td.ReportData[:], attest.Binding(c.Nonce, nil))
		q, err := p.TDXQuote(tmpl, td)
		if err != nil {
			t.Fatal(err)
		}
		return w.tr.Register(ctx, "token:1", instance.Registration{ID: id, Workload: "vm", Image: image, Nonce: c.Nonce,
			Evidence: attest.Evidence{Kind: attest.TDX, Data: q}})
	}
	in, err := register("td-1", td)
	mustStatus(t, in, err, instance.Verified, "")
	if in.Result.TCBStatus != "unevaluated" {
		t.Fatalf("TCB status %q", in.Result.TCBStatus)
	}
	debug := td
	debug.Debug = true
	in, err = register("td-2", debug)
	mustStatus(t, in, err, instance.Failed, attest.ReasonDebug)

	// Intel publishes TDX TCB info for the platform: first UpToDate (the
	// instance stays), then OutOfDate (it is revoked).
	tdxCol := func(status string) *attest.Verifier {
		got, _ := w.tr.Get("td-1")
		return tdxVerifier(t, w, p, got.Result.TCB.TeeTCBSVN, status)
	}
	if revoked, err := w.tr.UseVerifier(ctx, "system:collateral", "sha256:tdx-18", tdxCol("UpToDate")); err != nil || len(revoked) != 0 {
		t.Fatalf("UpToDate collateral revoked %v (%v)", revoked, err)
	}
	revoked, err := w.tr.UseVerifier(ctx, "system:collateral", "sha256:tdx-19", tdxCol("OutOfDate"))
	if err != nil || len(revoked) != 1 || revoked[0] != "td-1" {
		t.Fatalf("OutOfDate collateral revoked %v (%v)", revoked, err)
	}
}
