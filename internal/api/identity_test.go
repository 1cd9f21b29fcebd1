package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

const (
	certifiedDigest   = "sha256:" + "aa00000000000000000000000000000000000000000000000000000000000000"
	uncertifiedDigest = "sha256:" + "bb00000000000000000000000000000000000000000000000000000000000000"
)

type identityFixture struct {
	h             *Handler
	st            *store.Store
	op, viewer    string
	admin         string
	td            spiffeid.TrustDomain
	reg           *trust.Registry
	bundleRequest func() *spiffebundle.Bundle
}

func newIdentityAPI(t testing.TB) *identityFixture {
	t.Helper()
	h, s := newTestAPI(t)
	st := s.(*store.Store)
	ctx := t.Context()
	for _, d := range []string{certifiedDigest, uncertifiedDigest} {
		if err := st.PutImage(ctx, store.Image{Digest: d, Repository: "registry.example/app"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCertification(ctx, certifiedDigest, store.Certified, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutNode(ctx, store.Node{Name: "node-1", Mode: "detect", State: agentproto.StateDetectingOnly, Containers: "[]"}); err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("test.example")
	root, err := identity.NewRoot(td, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := identity.New(identity.Config{TrustDomain: td, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := identity.ParseTemplate("spiffe://{trustDomain}/ns/{namespace}/container/{container}")
	if err != nil {
		t.Fatal(err)
	}
	feed := trust.NewFeed(st, 10*time.Millisecond, nil)
	reg := trust.NewRegistry()
	feed.OnChange = reg.Invalidate // as the server wires them
	h.UseIdentity(IdentityConfig{Authority: a, Template: tmpl, Facts: trust.Facts(st), Feed: feed, Decisions: reg})
	f := &identityFixture{h: h, st: st, td: td, reg: reg}
	_, f.op, _ = st.CreateToken(ctx, "agent", store.RoleOperator)
	_, f.viewer, _ = st.CreateToken(ctx, "v", store.RoleViewer)
	admin, err := CreateToken(ctx, NewAuditor(st, ""), "test", "a", store.RoleAdmin) // audited, as always
	if err != nil {
		t.Fatal(err)
	}
	f.admin = admin.Token
	go feed.Run(t.Context())
	return f
}

func (f *identityFixture) call(method, path, token string, body any) (int, []byte) {
	return serveJSON(f.h, method, path, token, body)
}

// serveJSON sends body (a string as is, else JSON) to h with a bearer
// token ("" none) and returns the status and body.
func serveJSON(h http.Handler, method, path, token string, body any) (int, []byte) {
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func newCSR(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

func x509Req(node, container, image string, csr []byte) agentproto.X509Request {
	return agentproto.X509Request{Node: node, CSR: csr, Workload: agentproto.Workload{Container: container, Image: image, Namespace: "prod"}}
}

// TestIdentityIssuance: a certified, undrifted workload of a live node
// gets an X.509-SVID over its CSR's key that chains to the bundle, and a
// JWT-SVID; the rule refuses the uncertified, the drifted, a silent node
// and the revoked, with the reason in the answer, the audit log and the
// decisions.
func TestIdentityIssuance(t *testing.T) {
	f := newIdentityAPI(t)
	key, csr := newCSR(t)
	code, body := f.call("POST", agentproto.IdentityX509Path, f.op, x509Req("node-1", "c1", certifiedDigest, csr))
	if code != http.StatusOK {
		t.Fatalf("issuing: %d %s", code, body)
	}
	var got agentproto.X509Response
	json.Unmarshal(body, &got)
	if got.SpiffeID != "spiffe://test.example/ns/prod/container/c1" || len(got.Chain) != 2 {
		t.Fatalf("issued %+v", got)
	}
	leaf, _ := x509.ParseCertificate(got.Chain[0])
	inter, _ := x509.ParseCertificate(got.Chain[1])
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("the SVID is over another key than the CSR's")
	}
	code, body = f.call("GET", agentproto.IdentityBundlePath, "", nil)
	bundle, err := spiffebundle.Parse(f.td, body)
	if code != http.StatusOK || err != nil {
		t.Fatalf("bundle: %d %v", code, err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range bundle.X509Authorities() {
		roots.AddCert(r)
	}
	inters.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the SVID does not chain to the bundle: %v", err)
	}
	code, body = f.call("POST", agentproto.IdentityJWTPath, f.op, agentproto.JWTRequest{Node: "node-1", Audiences: []string{"db"},
		Workload: agentproto.Workload{Container: "c1", Image: certifiedDigest, Namespace: "prod"}})
	var jr agentproto.JWTResponse
	json.Unmarshal(body, &jr)
	if code != http.StatusOK {
		t.Fatalf("JWT: %d %s", code, body)
	}
	if s, err := identity.ValidateJWT(jr.Token, bundle, "db"); err != nil || s.ID.String() != got.SpiffeID {
		t.Fatalf("the JWT-SVID: %v %v", s, err)
	}
	if w, ok := f.reg.Workload(got.SpiffeID); !ok || w.Image != certifiedDigest || w.Node != "node-1" {
		t.Fatalf("registry: %+v %v", w, ok)
	}

	// Drift recorded for c2; c3 on a node never heard from.
	if _, err := f.st.AddRuntimeEvents(t.Context(), []store.RuntimeEvent{{Node: "node-1", Spool: "s", Seq: 1, Time: time.Now(),
		Verdict: "reported", Path: "/tmp/x", Container: "c2", Image: certifiedDigest}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		node, container, image, reason string
	}{
		{"node-1", "c9", uncertifiedDigest, identity.ReasonUncertified},
		{"node-1", "c2", certifiedDigest, identity.ReasonDrifted},
		{"node-2", "c3", certifiedDigest, identity.ReasonNodeSilent},
	} {
		_, csr := newCSR(t)
		code, body := f.call("POST", agentproto.IdentityX509Path, f.op, x509Req(c.node, c.container, c.image, csr))
		var ref agentproto.Refusal
		json.Unmarshal(body, &ref)
		if code != http.StatusForbidden || ref.Reason != c.reason {
			t.Errorf("%s on %s: %d %s, want 403 %s", c.container, c.node, code, body, c.reason)
		}
	}
	// Revoked through the API: the feed invalidates c1 in the registry and
	// its renewal is refused.
	if code, body := f.call("POST", "/api/v1/images/"+certifiedDigest+"/certification", f.admin, `{"status":"revoked","reason":"CVE"}`); code != http.StatusOK {
		t.Fatalf("revoking: %d %s", code, body)
	}
	waitUntil(t, time.Second, func() bool { _, ok := f.reg.Workload(got.SpiffeID); return !ok })
	code, body = f.call("POST", agentproto.IdentityX509Path, f.op, x509Req("node-1", "c1", certifiedDigest, csr))
	if !strings.Contains(string(body), `"reason": "revoked"`) || code != http.StatusForbidden {
		t.Fatalf("renewal after revocation: %d %s", code, body)
	}

	recs, err := f.st.AuditPage(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "identity.") {
			var rec identity.Record
			json.Unmarshal(r.After, &rec)
			if rec.Workload.Image == "" || rec.Workload.Node == "" || (r.Action == "identity.refuse" && rec.Refusal.Reason == "") {
				t.Errorf("audit entry %d lacks digest, node or reason: %s", r.Seq, r.After)
			}
			counts[r.Action]++
		}
	}
	if counts["identity.issue"] != 2 || counts["identity.refuse"] != 4 {
		t.Errorf("audited decisions %v, want 2 issued (X.509, JWT) and 4 refused", counts)
	}
	code, body = f.call("GET", "/api/v1/identity/decisions?container=c2", f.viewer, nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"reason": "drifted"`) {
		t.Fatalf("decisions: %d %s", code, body)
	}
}

func waitUntil(t *testing.T, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdentityBadInput: malformed requests are 400 (413 when too large),
// the wrong role 403 without a reason, no token 401; nothing is issued or
// audited for them.
func TestIdentityBadInput(t *testing.T) {
	f := newIdentityAPI(t)
	_, csr := newCSR(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaKey)
	tampered := bytes.Clone(csr)
	tampered[len(tampered)-5] ^= 1
	good := x509Req("node-1", "c1", certifiedDigest, csr)
	b, _ := json.Marshal(good)
	for i, c := range []struct {
		body any
		want int
	}{
		{"", 400}, {"{", 400}, {"[]", 400},
		{strings.Replace(string(b), `"node"`, `"extra":1,"node"`, 1), 400},
		{x509Req("node-1", "c1", certifiedDigest, []byte("not DER")), 400},
		{x509Req("node-1", "c1", certifiedDigest, rsaCSR), 400},
		{x509Req("node-1", "c1", certifiedDigest, tampered), 400},
		{x509Req("node 1", "c1", certifiedDigest, csr), 400},
		{x509Req("node-1", "", certifiedDigest, csr), 400},
		{x509Req("node-1", "c1", certifiedDigest, make([]byte, agentproto.MaxCSR+1)), 400},
		{`{"node":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
	} {
		if code, body := f.call("POST", agentproto.IdentityX509Path, f.op, c.body); code != c.want {
			t.Errorf("case %d: %d %s, want %d", i, code, body, c.want)
		}
	}
	if code, body := f.call("POST", agentproto.IdentityJWTPath, f.op, agentproto.JWTRequest{Node: "node-1", Workload: good.Workload}); code != 400 {
		t.Errorf("a JWT-SVID without audience: %d %s", code, body)
	}
	if code, body := f.call("POST", agentproto.IdentityX509Path, f.viewer, good); code != 403 || strings.Contains(string(body), "reason") {
		t.Errorf("a viewer asking an SVID: %d %s, want 403 without a reason", code, body)
	}
	if code, _ := f.call("POST", agentproto.IdentityX509Path, "", good); code != 401 {
		t.Errorf("no token: %d", code)
	}
	for _, q := range []string{"after=-1", "after=x", "wait=31", "wait=-1"} {
		if code, body := f.call("GET", agentproto.IdentityChangesPath+"?"+q, f.op, nil); code != 400 {
			t.Errorf("changes?%s: %d %s", q, code, body)
		}
	}
	if code, _ := f.call("GET", agentproto.IdentityBundlePath+"?format=der", "", nil); code != 400 {
		t.Errorf("bundle format=der: %d", code)
	}
	recs, _ := f.st.AuditPage(t.Context(), 0, 1000)
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "identity.") {
			t.Errorf("a bad request was decided on: %s %s", r.Action, r.After)
		}
	}
	// A server without a trust domain has no identity routes.
	h, _ := newTestAPI(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", agentproto.IdentityBundlePath, nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("bundle without identity: %d", rec.Code)
	}
}

// TestIdentityChangesLongPoll: a poll waits for a certification change
// and returns its digest at once; polls are exempt from the per-token
// in-flight bound and the request timeout.
func TestIdentityChangesLongPoll(t *testing.T) {
	f := newIdentityAPI(t)
	f.h.UseLimits(Limits{InFlight: 2, RequestTimeout: 200 * time.Millisecond})
	code, body := f.call("GET", agentproto.IdentityChangesPath, f.op, nil)
	var first agentproto.Changes
	json.Unmarshal(body, &first)
	if code != http.StatusOK || first.Seq <= 0 {
		t.Fatalf("after=0: %d %s", code, body)
	}
	var wg sync.WaitGroup
	codes := make([]int, 5)
	bodies := make([][]byte, 5)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], bodies[i] = f.call("GET", fmt.Sprintf("%s?after=%d&wait=5", agentproto.IdentityChangesPath, first.Seq), f.op, nil)
		}()
	}
	time.Sleep(400 * time.Millisecond) // past the request timeout
	revoked := time.Now()
	if code, body := f.call("POST", "/api/v1/images/"+certifiedDigest+"/certification", f.admin, `{"status":"revoked","reason":"CVE"}`); code != http.StatusOK {
		t.Fatalf("revoking: %d %s", code, body)
	}
	wg.Wait()
	took := time.Since(revoked)
	for i := range codes {
		var ch agentproto.Changes
		json.Unmarshal(bodies[i], &ch)
		if codes[i] != http.StatusOK || len(ch.Digests) != 1 || ch.Digests[0] != certifiedDigest || ch.Seq <= first.Seq {
			t.Errorf("poll %d: %d %s", i, codes[i], bodies[i])
		}
	}
	if took > time.Second {
		t.Errorf("the polls returned %v after the revocation, want under 1 s", took)
	}
	t.Logf("5 polls (in-flight bound 2) answered %v after the revocation", took.Round(time.Millisecond))
}

// FuzzIdentityX509 sends arbitrary bodies to the X.509-SVID route: the
// answer is a decision (200, 403 with a reason) or a client error, never
// a server error, and an SVID is only ever issued to the certified
// digest on the live node.
func FuzzIdentityX509(f *testing.F) {
	fx := newIdentityAPI(f)
	fx.h.UseLimits(Limits{Rate: -1})
	_, csr := newCSR(f)
	for _, r := range []agentproto.X509Request{x509Req("node-1", "c1", certifiedDigest, csr), x509Req("node-2", "c1", uncertifiedDigest, csr)} {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{"node":"n","workload":{"container":"c","image":"i","labels":{"a":"\u0000"}},"csr":"AAAA"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := fx.call("POST", agentproto.IdentityX509Path, fx.op, string(body))
		switch code {
		case http.StatusOK:
			var req agentproto.X509Request
			json.Unmarshal(body, &req)
			if req.Workload.Image != certifiedDigest || req.Node != "node-1" {
				t.Fatalf("issued to %s on %s: %s", req.Workload.Image, req.Node, out)
			}
		case http.StatusForbidden:
			if !bytes.Contains(out, []byte(`"reason"`)) {
				t.Fatalf("403 without a reason: %s", out)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%d %s", code, out)
		}
	})
}

// TestFederatedBundlesRoute lists the federated bundles, public.
func TestFederatedBundlesRoute(t *testing.T) {
	f := newIdentityAPI(t)
	partner := spiffeid.RequireTrustDomainFromString("partner.example")
	root, _ := identity.NewRoot(partner, 0, time.Now())
	pa, err := identity.New(identity.Config{TrustDomain: partner, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	f.h.identity.cfg.Federated = func() []*spiffebundle.Bundle { return []*spiffebundle.Bundle{pa.Bundle()} }
	code, body := f.call("GET", agentproto.IdentityBundlesPath, "", nil)
	var got struct {
		Bundles map[string]json.RawMessage `json:"bundles"`
	}
	json.Unmarshal(body, &got)
	raw, ok := got.Bundles["spiffe://partner.example"]
	if code != http.StatusOK || !ok {
		t.Fatalf("%d %s", code, body)
	}
	if b, err := spiffebundle.Parse(partner, raw); err != nil || len(b.X509Authorities()) != 1 {
		t.Fatalf("the partner's bundle: %v", err)
	}
}

// TestNodeBoundToken: a token called node:NAME asks identities for node
// NAME only; another node's request is refused before any decision.
func TestNodeBoundToken(t *testing.T) {
	f := newIdentityAPI(t)
	_, bound, err := f.st.CreateToken(t.Context(), NodeTokenPrefix+"node-1", store.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	_, csr := newCSR(t)
	if code, body := f.call("POST", agentproto.IdentityX509Path, bound, x509Req("node-1", "c1", certifiedDigest, csr)); code != http.StatusOK {
		t.Fatalf("its own node: %d %s", code, body)
	}
	for _, path := range []string{agentproto.IdentityX509Path, agentproto.IdentityJWTPath} {
		body := any(x509Req("node-2", "c1", certifiedDigest, csr))
		if path == agentproto.IdentityJWTPath {
			body = agentproto.JWTRequest{Node: "node-2", Audiences: []string{"db"}, Workload: agentproto.Workload{Container: "c1", Image: certifiedDigest}}
		}
		code, out := f.call("POST", path, bound, body)
		if code != http.StatusForbidden || !strings.Contains(string(out), `bound to node \"node-1\"`) {
			t.Errorf("%s for another node: %d %s", path, code, out)
		}
	}
	// An unbound operator token may still name any node.
	if code, body := f.call("POST", agentproto.IdentityX509Path, f.op, x509Req("node-1", "c2", certifiedDigest, csr)); code != http.StatusOK {
		t.Fatalf("an unbound token: %d %s", code, body)
	}
}
