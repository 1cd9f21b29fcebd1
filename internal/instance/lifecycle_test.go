package instance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func mustStatus(t *testing.T, in instance.Instance, err error, want instance.Status, reason attest.Reason) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != want || in.Reason != string(reason) {
		t.Fatalf("instance %s: status %s (%s: %s), want %s (%s)", in.ID, in.Status, in.Reason, in.Detail, want, reason)
	}
}

func TestLifecycle(t *testing.T) { backends(t, testLifecycle) }

func testLifecycle(t *testing.T, open func(testing.TB) *store.Store) {
	ctx := context.Background()
	w := newWorld(t, open, instance.Policy{ReattestEvery: 10 * time.Minute})

	// Register with fresh evidence bound to the server's nonce.
	c, err := w.tr.Challenge(ctx, "token:1", "pay-0")
	if err != nil {
		t.Fatal(err)
	}
	in, err := w.registerWith(t, "pay-0", "eu-west", w.guest, c.Nonce, true)
	mustStatus(t, in, err, instance.Verified, "")
	if ok, why := w.tr.Trusted("pay-0"); !ok {
		t.Fatalf("verified instance not trusted: %s", why)
	}
	if in.RegionSource != instance.RegionNodeConfig || in.Result.TCB.SNP == nil {
		t.Fatalf("instance %+v", in)
	}

	// The same nonce again: a replay, refused and not recorded.
	_, err = w.registerWith(t, "pay-0", "eu-west", w.guest, c.Nonce, true)
	if attest.ReasonOf(err) != attest.ReasonReplay {
		t.Fatalf("replayed nonce: %v", err)
	}
	// A nonce issued to another instance is a replay too.
	c2, _ := w.tr.Challenge(ctx, "token:1", "other")
	if _, err = w.registerWith(t, "pay-0", "eu-west", w.guest, c2.Nonce, true); attest.ReasonOf(err) != attest.ReasonReplay {
		t.Fatalf("foreign nonce: %v", err)
	}
	// An expired nonce.
	c3, _ := w.tr.Challenge(ctx, "token:1", "pay-0")
	w.clk.Add(instance.DefaultChallengeTTL + time.Second)
	if _, err = w.registerWith(t, "pay-0", "eu-west", w.guest, c3.Nonce, true); attest.ReasonOf(err) != attest.ReasonReplay {
		t.Fatalf("expired nonce: %v", err)
	}

	// Evidence that does not bind the nonce, a debug guest, another
	// measurement, an image without reference values: failed, with why.
	in, err = w.register(t, "pay-1", "eu-west", w.guest, false)
	mustStatus(t, in, err, instance.Failed, attest.ReasonNonce)
	dbg := w.guest
	dbg.Debug = true
	in, err = w.register(t, "pay-2", "eu-west", dbg, true)
	mustStatus(t, in, err, instance.Failed, attest.ReasonDebug)
	other := w.guest
	other.Measurement[0] ^= 1
	in, err = w.register(t, "pay-3", "eu-west", other, true)
	mustStatus(t, in, err, instance.Failed, attest.ReasonMeasurement)
	if ok, why := w.tr.Trusted("pay-3"); ok || !strings.Contains(why, "failed") {
		t.Fatalf("failed instance trusted: %v %s", ok, why)
	}

	// Not re-attested in time: stale, and no longer trusted even before
	// the sweep marks it.
	w.clk.Add(11 * time.Minute)
	if ok, _ := w.tr.Trusted("pay-0"); ok {
		t.Fatal("an instance past its re-attestation is trusted")
	}
	stale, err := w.tr.Sweep(ctx)
	if err != nil || len(stale) != 1 || stale[0] != "pay-0" {
		t.Fatalf("sweep: %v %v", stale, err)
	}
	got, _ := w.tr.Get("pay-0")
	if got.Status != instance.Stale {
		t.Fatalf("after sweep: %+v", got)
	}
	// Re-attesting makes it verified again.
	in, err = w.register(t, "pay-0", "eu-west", w.guest, true)
	mustStatus(t, in, err, instance.Verified, "")
	if !in.Registered.Equal(t0) {
		t.Fatalf("re-attestation moved the registration time to %s", in.Registered)
	}

	// AMD publishes a bulletin: the minimum TCB rises above the platform's.
	min := snpTCB
	min.SNP++
	revoked, err := w.tr.UseVerifier(ctx, "system:collateral", "sha256:new", w.verifier(t, attest.Policy{MinSNPTCB: min}))
	if err != nil || len(revoked) != 1 || revoked[0] != "pay-0" {
		t.Fatalf("revoked %v, %v", revoked, err)
	}
	if ok, why := w.tr.Trusted("pay-0"); ok || !strings.Contains(why, "revoked") {
		t.Fatalf("revoked instance: trusted %v (%s)", ok, why)
	}
	// New registrations meet the new minimum too.
	in, err = w.register(t, "pay-4", "eu-west", w.guest, true)
	mustStatus(t, in, err, instance.Failed, attest.ReasonTCBOutOfDate)

	// All of it persisted: a second tracker over the same store agrees.
	tr2, err := instance.New(instance.Config{Auditor: api.NewAuditor(w.st, ""), Verifier: w.tr.Verifier(),
		References: func(context.Context, string) (*attest.ReferencePredicate, error) { return nil, errors.New("none") }})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.Load(ctx, w.st); err != nil {
		t.Fatal(err)
	}
	want := map[string]instance.Status{"pay-0": instance.Revoked, "pay-1": instance.Failed, "pay-2": instance.Failed,
		"pay-3": instance.Failed, "pay-4": instance.Failed}
	for _, in := range tr2.List("") {
		if want[in.ID] != in.Status {
			t.Errorf("stored %s: %s (%s), want %s", in.ID, in.Status, in.Reason, want[in.ID])
		}
	}
	if n := len(tr2.List("")); n != len(want) {
		t.Errorf("stored %d instances, want %d", n, len(want))
	}
	g, _ := tr2.Get("pay-0")
	if g.Reason != string(attest.ReasonTCBOutOfDate) || g.Result == nil || g.Result.TCB.SNP.SNP != snpTCB.SNP {
		t.Errorf("stored pay-0: %+v", g)
	}

	// Every change is in the audit chain, which verifies.
	rep, err := audit.Verify(ctx, w.st.DB())
	if err != nil || !rep.OK {
		t.Fatalf("audit: %+v %v", rep, err)
	}
	actions := map[string]int{}
	recs, err := w.st.AuditPage(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		actions[r.Action]++
	}
	if actions["instance.register"] != 6 || actions["instance.revoke"] != 1 || actions["instance.stale"] != 1 || actions["instance.challenge"] != 8 {
		t.Fatalf("audit actions %v", actions)
	}
}

// WorkloadTEE, what the secret store's "tee" release condition reads:
// the kind only while every instance of the workload is trusted.
func TestWorkloadTEE(t *testing.T) {
	w := newWorld(t, sqliteOnly, instance.Policy{})
	if k, why := w.tr.WorkloadTEE("payments"); k != "" || !strings.Contains(why, "no registered") {
		t.Fatalf("before: %q %s", k, why)
	}
	in, err := w.register(t, "a", "", w.guest, true)
	mustStatus(t, in, err, instance.Verified, "")
	if k, why := w.tr.WorkloadTEE("payments"); k != attest.SNP {
		t.Fatalf("one verified: %q %s", k, why)
	}
	in, err = w.register(t, "b", "", w.guest, false) // a replica with bad evidence
	mustStatus(t, in, err, instance.Failed, attest.ReasonNonce)
	if k, why := w.tr.WorkloadTEE("payments"); k != "" || !strings.Contains(why, `"b" is failed`) {
		t.Fatalf("one failed replica: %q %s", k, why)
	}
}

// An instance ID stays with its workload and its machine: another
// workload cannot take it over, and evidence from another chip is another
// instance.
func TestReattestSameInstance(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sqliteOnly, instance.Policy{})
	in, err := w.register(t, "a", "", w.guest, true)
	mustStatus(t, in, err, instance.Verified, "")

	c, _ := w.tr.Challenge(ctx, "token:1", "a")
	copy(w.guest.ReportData[:], attest.Binding(c.Nonce, nil))
	ev, _ := w.snp.Evidence(w.guest)
	_, err = w.tr.Register(ctx, "token:2", instance.Registration{ID: "a", Workload: "other", Image: image, Nonce: c.Nonce, Evidence: *ev})
	if !errors.Is(err, instance.ErrConflict) {
		t.Fatalf("another workload took the ID: %v", err)
	}

	other, err := attesttest.NewSNPPlatform(t0.Add(-time.Hour), snpTCB)
	if err != nil {
		t.Fatal(err)
	}
	w.snp = other // same roots (go-sev-guest's test ARK/ASK), another chip
	in, err = w.register(t, "a", "", w.guest, true)
	mustStatus(t, in, err, instance.Failed, attest.ReasonPolicy)
	if !strings.Contains(in.Detail, "before and now on") {
		t.Fatalf("detail %q", in.Detail)
	}
	// A failure in between does not unbind the ID from its first chip.
	in, err = w.register(t, "a", "", w.guest, false) // fails: nonce
	mustStatus(t, in, err, instance.Failed, attest.ReasonNonce)
	in, err = w.register(t, "a", "", w.guest, true)
	mustStatus(t, in, err, instance.Failed, attest.ReasonPolicy)
}
