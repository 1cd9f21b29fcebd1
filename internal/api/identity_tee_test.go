package api

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/attest/attesttest"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/trust"
	"github.com/bulwark-sec/bulwark/internal/workloadapi"
)

// teeFixture is the identity API of newIdentityAPI with a TEE policy
// over a real instance tracker (a synthetic SEV-SNP platform, its
// evidence verified by the production verifier), both served over
// loopback.
type teeFixture struct {
	*identityFixture
	srv   *httptest.Server
	snp   *attesttest.SNPPlatform
	guest attesttest.Guest
	tr    *instance.Tracker
	tcb   attest.SNPTCB
}

func newTEEAPI(t *testing.T, pol trust.TEEPolicy, ipol instance.Policy) *teeFixture {
	t.Helper()
	f := &teeFixture{identityFixture: newIdentityAPI(t), tcb: attest.SNPTCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}}
	var err error
	if f.snp, err = attesttest.NewSNPPlatform(time.Now().Add(-24*time.Hour), f.tcb); err != nil {
		t.Fatal(err)
	}
	f.guest = attesttest.Guest{Measurement: sha512.Sum384([]byte("confidential payments")), SVN: 1}
	pred := &attest.ReferencePredicate{References: []attest.Reference{{Kind: attest.SNP, Measurement: f.guest.Measurement[:]}}}
	refs := func(ctx context.Context, img string) (*attest.ReferencePredicate, error) {
		if img != certifiedDigest {
			return nil, fmt.Errorf("no reference attestation for %s", img)
		}
		return pred, nil
	}
	f.tr, err = instance.New(instance.Config{Auditor: NewAuditor(f.st, ""), References: refs, Verifier: f.verifier(t, attest.Policy{}),
		Policy: ipol, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.h.UseInstances(f.tr)
	f.h.identity.issuer.TEE = pol.Facts(f.tr) // as UseIdentity does with IdentityConfig.TEE
	f.srv = httptest.NewServer(f.h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *teeFixture) verifier(t testing.TB, p attest.Policy) *attest.Verifier {
	t.Helper()
	v, err := attest.New(attest.Options{SNPRoots: f.snp.Roots(), Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// do calls the loopback server as the agent (an operator).
func (f *teeFixture) do(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	return f.doAs(t, f.op, method, path, body)
}

// doAs calls the loopback server with token.
func (f *teeFixture) doAs(t testing.TB, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// register attests instance id of workload (a SPIFFE ID) on node-1 in
// region through the API: a challenge, then evidence bound to its nonce.
func (f *teeFixture) register(t testing.TB, id, workload, region string) instance.Instance {
	t.Helper()
	code, body := f.do(t, "POST", "/api/v1/instances/"+id+"/challenge", nil)
	if code != http.StatusCreated {
		t.Fatalf("challenge: %d %s", code, body)
	}
	var c instance.Challenge
	json.Unmarshal(body, &c)
	g := f.guest
	copy(g.ReportData[:], attest.Binding(c.Nonce, nil))
	ev, err := f.snp.Evidence(g)
	if err != nil {
		t.Fatal(err)
	}
	code, body = f.do(t, "POST", "/api/v1/instances", instance.Registration{ID: id, Workload: workload, Node: "node-1",
		Region: region, Image: certifiedDigest, Nonce: c.Nonce, Evidence: *ev})
	if code != http.StatusOK {
		t.Fatalf("registering %s: %d %s", id, code, body)
	}
	var in instance.Instance
	json.Unmarshal(body, &in)
	return in
}

// ask asks an X.509-SVID for container c over loopback: the SVID's
// SPIFFE ID, or the refusal's reason and detail.
func (f *teeFixture) ask(t testing.TB, c string) (id, reason, detail string) {
	t.Helper()
	_, csr := newCSR(t)
	code, body := f.do(t, "POST", agentproto.IdentityX509Path, x509Req("node-1", c, certifiedDigest, csr))
	switch code {
	case http.StatusOK:
		var got agentproto.X509Response
		json.Unmarshal(body, &got)
		return got.SpiffeID, "", ""
	case http.StatusForbidden:
		var ref agentproto.Refusal
		json.Unmarshal(body, &ref)
		return "", ref.Reason, ref.Detail
	}
	t.Fatalf("asking for %s: %d %s", c, code, body)
	return
}

const teeID = "spiffe://test.example/ns/prod/container/pay"

// TestIdentityTEE: a workload whose policy asks for SEV-SNP in eu-west
// gets no SVID before its confidential instance is verified ("unattested",
// and why), gets one while it is, and loses it when new collateral
// revokes the instance: the change feed names its digest within a second
// and the renewal is refused with the instance's status and reason, in
// the answer and in the audit entry. A workload the policy does not name
// is not affected; an instance in another region does not vouch.
func TestIdentityTEE(t *testing.T) {
	pol := trust.TEEPolicy{Rules: []trust.TEERule{{SpiffeIDs: []string{"spiffe://test.example/ns/prod/container/pay*"},
		Kinds: []attest.Kind{attest.SNP}, Regions: []string{"eu-west"}}}}
	f := newTEEAPI(t, pol, instance.Policy{})

	if id, reason, detail := f.ask(t, "pay"); id != "" || reason != identity.ReasonUnattested || !strings.Contains(detail, "no confidential instance") {
		t.Fatalf("before any instance: %q %q %q", id, reason, detail)
	}
	if id, reason, _ := f.ask(t, "web"); id == "" {
		t.Fatalf("a workload the policy does not name was refused: %s", reason)
	}

	// The instance's verification reaches agents through the feed.
	_, seq := f.changes(t, -1, 0)
	in := f.register(t, "pay-vm-1", teeID, "eu-west")
	if in.Status != instance.Verified {
		t.Fatalf("instance %s: %s", in.Status, in.Detail)
	}
	if ds, _ := f.changes(t, seq, 5); len(ds) != 1 || ds[0] != certifiedDigest {
		t.Fatalf("feed after registration: %v", ds)
	}
	if id, reason, detail := f.ask(t, "pay"); id != teeID {
		t.Fatalf("verified instance: refused %q %q", reason, detail)
	}

	// An instance in another region does not vouch for its workload.
	f.register(t, "pay2-vm-1", teeID+"2", "us-east")
	if _, reason, detail := f.ask(t, "pay2"); reason != identity.ReasonUnattested || !strings.Contains(detail, `region "us-east"`) {
		t.Fatalf("us-east instance: %q %q", reason, detail)
	}

	// AMD raises the minimum TCB: the instance is revoked, the feed names
	// the digest within a second, the renewal is refused.
	_, seq = f.changes(t, -1, 0)
	min := f.tcb
	min.SNP++
	start := time.Now()
	if ids, err := f.tr.UseVerifier(t.Context(), "system:collateral", "sha256:bulletin", f.verifier(t, attest.Policy{MinSNPTCB: min})); err != nil || len(ids) != 2 {
		t.Fatalf("revoking: %v %v", ids, err)
	}
	ds, _ := f.changes(t, seq, 5)
	took := time.Since(start)
	if len(ds) != 1 || ds[0] != certifiedDigest || took > time.Second {
		t.Fatalf("feed after revocation: %v after %s", ds, took)
	}
	t.Logf("collateral revocation to the feed: %s", took.Round(time.Millisecond))
	if _, ok := f.reg.Workload(teeID); ok {
		t.Fatalf("the registry still lists %s as holding its identity", teeID)
	}
	_, reason, detail := f.ask(t, "pay")
	if reason != identity.ReasonUnattested || !strings.Contains(detail, "revoked") || !strings.Contains(detail, string(attest.ReasonTCBOutOfDate)) {
		t.Fatalf("after revocation: %q %q", reason, detail)
	}
	if id, _, _ := f.ask(t, "web"); id == "" {
		t.Fatal("the revocation withdrew an identity the policy does not name")
	}
	code, body := f.do(t, "POST", agentproto.IdentityJWTPath, agentproto.JWTRequest{Node: "node-1", Audiences: []string{"db"},
		Workload: agentproto.Workload{Container: "pay", Image: certifiedDigest, Namespace: "prod"}})
	if code != http.StatusForbidden || !strings.Contains(string(body), identity.ReasonUnattested) {
		t.Fatalf("JWT-SVID after revocation: %d %s", code, body)
	}

	// The refusal is in the audit log with the reason and the instance.
	recs, err := f.st.AuditPage(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var last identity.Record
	var images int
	for _, r := range recs {
		switch r.Action {
		case "identity.refuse":
			json.Unmarshal(r.After, &last)
		case instance.ActionImage:
			images++
		}
	}
	if last.Refusal == nil || last.Refusal.Reason != identity.ReasonUnattested || !strings.Contains(last.Refusal.Detail, `"pay-vm-1" is revoked`) ||
		last.Workload.Image != certifiedDigest || last.Workload.Node != "node-1" {
		t.Fatalf("last refusal audited: %+v", last)
	}
	if images != 3 { // two verified, one revocation of both (one image)
		t.Fatalf("%d %s audit entries, want 3", images, instance.ActionImage)
	}
}

// changes long-polls the feed after seq for up to wait seconds.
func (f *teeFixture) changes(t testing.TB, after int64, wait int) ([]string, int64) {
	t.Helper()
	q := fmt.Sprintf("?wait=%d", wait)
	if after >= 0 {
		q += fmt.Sprintf("&after=%d", after)
	}
	code, body := f.do(t, "GET", "/api/v1/identity/changes"+q, nil)
	if code != http.StatusOK {
		t.Fatalf("changes: %d %s", code, body)
	}
	var c agentproto.Changes
	json.Unmarshal(body, &c)
	return c.Digests, c.Seq
}

// TestIdentityTEEStale: an instance that does not re-attest in time stops
// vouching at once (the renewal is refused before any sweep), and the
// sweep that marks it stale names its digest on the feed, so agents ask
// again and the identity leaves the Workload API. A stale instance left
// behind blocks a new one until an admin retires it.
func TestIdentityTEEStale(t *testing.T) {
	pol := trust.TEEPolicy{Rules: []trust.TEERule{{Namespaces: []string{"prod"}, Kinds: []attest.Kind{attest.SNP}}}}
	f := newTEEAPI(t, pol, instance.Policy{ReattestEvery: time.Second})
	f.register(t, "pay-vm-1", teeID, "eu-west")
	if id, reason, detail := f.ask(t, "pay"); id != teeID {
		t.Fatalf("verified instance: refused %q %q", reason, detail)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, reason, detail := f.ask(t, "pay"); reason != identity.ReasonUnattested || !strings.Contains(detail, "last attested") {
		t.Fatalf("past reattestEvery: %q %q", reason, detail)
	}
	_, seq := f.changes(t, -1, 0)
	if ids, err := f.tr.Sweep(t.Context()); err != nil || len(ids) != 1 {
		t.Fatalf("sweep: %v %v", ids, err)
	}
	if ds, _ := f.changes(t, seq, 5); len(ds) != 1 || ds[0] != certifiedDigest {
		t.Fatalf("feed after the sweep: %v", ds)
	}
	if _, reason, detail := f.ask(t, "pay"); reason != identity.ReasonUnattested || !strings.Contains(detail, "is stale") {
		t.Fatalf("stale: %q %q", reason, detail)
	}
	// A new instance does not vouch while the stale one is registered on
	// the node (the agent cannot tell which one the container runs in).
	f.register(t, "pay-vm-2", teeID, "eu-west")
	if _, reason, detail := f.ask(t, "pay"); reason != identity.ReasonUnattested || !strings.Contains(detail, `"pay-vm-1" is stale`) {
		t.Fatalf("a new instance beside a stale one: %q %q", reason, detail)
	}
	// Retiring the dead one takes an admin; then the new one vouches.
	if code, body := f.do(t, "DELETE", "/api/v1/instances/pay-vm-1", nil); code != http.StatusForbidden {
		t.Fatalf("retiring as an operator: %d %s", code, body)
	}
	if code, _ := f.doAs(t, f.admin, "DELETE", "/api/v1/instances/pay-vm-1", nil); code != http.StatusOK {
		t.Fatalf("retiring as an admin: %d", code)
	}
	if code, _ := f.doAs(t, f.admin, "DELETE", "/api/v1/instances/pay-vm-1", nil); code != http.StatusNotFound {
		t.Fatalf("retiring again: %d", code)
	}
	if id, reason, detail := f.ask(t, "pay"); id != teeID {
		t.Fatalf("after retiring the stale instance: refused %q %q", reason, detail)
	}
	recs, _ := f.st.AuditPage(t.Context(), 0, 1000)
	if r := recs[len(recs)-1]; r.Action != "identity.issue" || recs[len(recs)-2].Action != instance.ActionImage || recs[len(recs)-3].Action != "instance.retire" ||
		!strings.Contains(string(recs[len(recs)-3].Before), `"stale"`) {
		t.Fatalf("audit tail: %s %s %s", recs[len(recs)-3].Action, recs[len(recs)-2].Action, r.Action)
	}
}

// TestIdentityTEEAgent: the agent's side over loopback (its server client
// and identity manager, as bulwark-agent runs them): the workload's
// SVID is issued once its instance is verified and dropped within a
// second of new collateral revoking the instance, pushed by the feed
// (its renewal is half an hour away and refusals are retried every 30 s).
func TestIdentityTEEAgent(t *testing.T) {
	pol := trust.TEEPolicy{Rules: []trust.TEERule{{Namespaces: []string{"prod"}, Kinds: []attest.Kind{attest.SNP}}}}
	f := newTEEAPI(t, pol, instance.Policy{})
	f.register(t, "pay-vm-1", teeID, "eu-west")
	w := identity.Workload{Node: "node-1", Container: "pay", Image: certifiedDigest, Namespace: "prod"}
	m := workloadapi.NewManager(workloadapi.ManagerConfig{Every: 50 * time.Millisecond,
		Issuer:    &workloadapi.ServerIssuer{URL: f.srv.URL, Token: f.op, Node: "node-1", Client: f.srv.Client(), Wait: 5 * time.Second},
		Workloads: func() []identity.Workload { return []identity.Workload{w} }})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go m.Run(ctx)
	waitUntil(t, 5*time.Second, func() bool { return m.Stats().Issued >= 1 })
	time.Sleep(200 * time.Millisecond) // the change poll is held (it may push the registration: asked again, issued again)
	issued := m.Stats().Issued

	min := f.tcb
	min.SNP++
	start := time.Now()
	if _, err := f.tr.UseVerifier(t.Context(), "system:collateral", "sha256:bulletin", f.verifier(t, attest.Policy{MinSNPTCB: min})); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Second, func() bool { return m.Stats().Refused == 1 })
	t.Logf("collateral revocation -> identity dropped by the agent in %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond)
	if s := m.Stats(); s.Issued != issued || s.Refused != 1 {
		t.Fatalf("stats %+v: issued again after the revocation", s)
	}
}
