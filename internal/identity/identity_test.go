package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/bulwark-sec/bulwark/internal/seal"
)

var td = spiffeid.RequireTrustDomainFromString("prod.example")

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newAuthority(t testing.TB, clk *clock) (*Authority, *CA) {
	t.Helper()
	root, err := NewRoot(td, 0, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{TrustDomain: td, Root: root, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a, root
}

func mint(t testing.TB, a *Authority, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.SignX509(id, key.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: s.ID, Certificates: s.Chain, PrivateKey: key}
}

func TestX509SVIDVerifiesAgainstTheBundle(t *testing.T) {
	clk := &clock{t: time.Now()}
	a, _ := newAuthority(t, clk)
	id := spiffeid.RequireFromString("spiffe://prod.example/ns/shop/sa/cart")
	s := mint(t, a, id)
	leaf := s.Certificates[0]
	if leaf.IsCA || len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
		t.Fatalf("leaf: CA %v, URIs %v", leaf.IsCA, leaf.URIs)
	}
	if got := leaf.NotAfter.Sub(clk.Now()); got < DefaultX509TTL-time.Second || got > DefaultX509TTL {
		t.Fatalf("lifetime %s, want %s", got, DefaultX509TTL)
	}
	gotID, _, err := x509svid.Verify(s.Certificates, a.Bundle().X509Bundle())
	if err != nil || gotID != id {
		t.Fatalf("Verify: %v %v", gotID, err)
	}
	// Another trust domain's bundle does not verify it.
	other, _ := newAuthority(t, clk)
	if _, _, err := x509svid.Verify(s.Certificates, spiffebundle.FromX509Authorities(td, other.Bundle().X509Authorities())); err == nil {
		t.Fatal("verified with another root")
	}
	// Not for a foreign trust domain, not over an RSA or missing key.
	if _, err := a.SignX509(spiffeid.RequireFromString("spiffe://evil.example/x"), s.PrivateKey.Public(), 0); err == nil {
		t.Fatal("signed an ID of another trust domain")
	}
	if _, err := a.SignX509(id, nil, 0); err == nil {
		t.Fatal("signed a nil key")
	}
}

func TestIntermediateRotatesAndOldSVIDsStillVerify(t *testing.T) {
	clk := &clock{t: time.Now()}
	a, _ := newAuthority(t, clk)
	id := spiffeid.RequireFromString("spiffe://prod.example/ns/a/sa/b")
	first := a.Intermediate()
	old := mint(t, a, id)
	clk.Add(DefaultIntermediateTTL/2 - time.Hour + time.Minute) // old SVID: 1 minute left... it was minted at t0
	if err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	if !a.Intermediate().Equal(first) {
		t.Fatal("rotated before half life")
	}
	clk.Add(time.Hour)
	seq, _ := a.Bundle().SequenceNumber()
	if err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	if a.Intermediate().Equal(first) {
		t.Fatal("not rotated past half life")
	}
	// The bundle holds the root only, so an X.509 rotation does not change it.
	if got, _ := a.Bundle().SequenceNumber(); got == seq {
		t.Log("bundle sequence moved with the intermediate (harmless)")
	}
	fresh := mint(t, a, id)
	if _, _, err := x509svid.Verify(fresh.Certificates, a.Bundle().X509Bundle(), x509svid.WithTime(clk.Now())); err != nil {
		t.Fatalf("new SVID: %v", err)
	}
	// The old SVID is expired by now (it lived 1 h); verified at its own
	// time, its chain through the old intermediate still holds.
	pool := x509.NewCertPool()
	for _, r := range a.Bundle().X509Authorities() {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	inter.AddCert(old.Certificates[1])
	if _, err := old.Certificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: old.Certificates[0].NotBefore.Add(time.Minute)}); err != nil {
		t.Fatalf("old SVID through the old intermediate: %v", err)
	}
}

func TestOfflineRootNeedsAnIntermediate(t *testing.T) {
	clk := &clock{t: time.Now()}
	root, _ := NewRoot(td, 0, clk.Now())
	if _, err := New(Config{TrustDomain: td, Roots: []*x509.Certificate{root.Cert}, Now: clk.Now}); err == nil {
		t.Fatal("an authority without root key or intermediate")
	}
	it, _ := root.NewIntermediate(0, clk.Now())
	a, err := New(Config{TrustDomain: td, Roots: []*x509.Certificate{root.Cert}, Intermediate: it, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	mint(t, a, spiffeid.RequireFromString("spiffe://prod.example/x"))
	// An intermediate of another root is refused.
	otherRoot, _ := NewRoot(td, 0, clk.Now())
	bad, _ := otherRoot.NewIntermediate(0, clk.Now())
	if _, err := New(Config{TrustDomain: td, Roots: []*x509.Certificate{root.Cert}, Intermediate: bad, Now: clk.Now}); err == nil {
		t.Fatal("accepted an intermediate that does not chain to the root")
	}
	// Expired: refused, no SVID outlives it.
	clk.Add(DefaultIntermediateTTL + time.Minute)
	if err := a.Rotate(); err == nil {
		t.Fatal("an expired intermediate with an offline root rotated")
	}
}

func TestJWTSVID(t *testing.T) {
	clk := &clock{t: time.Now()}
	a, _ := newAuthority(t, clk)
	id := spiffeid.RequireFromString("spiffe://prod.example/ns/a/sa/b")
	tok, exp, err := a.SignJWT(id, []string{"db", "queue"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Sub(clk.Now()) != DefaultJWTTTL {
		t.Fatalf("expires in %s", exp.Sub(clk.Now()))
	}
	b := a.Bundle().JWTBundle()
	s, err := ValidateJWT(tok, b, "db")
	if err != nil || s.ID != id {
		t.Fatalf("validate: %v %v", s, err)
	}
	if _, err := ValidateJWT(tok, b, "other"); err == nil {
		t.Fatal("validated for an audience it was not issued to")
	}
	other, _ := newAuthority(t, clk)
	foreign := jwtbundle.FromJWTAuthorities(spiffeid.RequireTrustDomainFromString("other.example"), other.Bundle().JWTAuthorities())
	if _, err := ValidateJWT(tok, foreign, "db"); err == nil {
		t.Fatal("validated against another trust domain's bundle")
	}
	if _, _, err := a.SignJWT(id, nil, 0); err == nil {
		t.Fatal("signed a JWT-SVID without audience")
	}
	if _, err := ValidateJWT("not.a.jwt", b, "db"); err == nil {
		t.Fatal("validated garbage")
	}
	if _, err := ValidateJWT(strings.Repeat("a", 17<<10), b, "db"); err == nil {
		t.Fatal("validated an oversized token")
	}
	// Expired: go-spiffe validates against the wall clock, so sign one in the past.
	past := &clock{t: time.Now().Add(-time.Hour)}
	pa, _ := newAuthority(t, past)
	old, _, _ := pa.SignJWT(id, []string{"db"}, time.Minute)
	if _, err := ValidateJWT(old, pa.Bundle().JWTBundle(), "db"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
}

func TestJWTKeysRotateWithOverlap(t *testing.T) {
	clk := &clock{t: time.Now()}
	a, _ := newAuthority(t, clk)
	id := spiffeid.RequireFromString("spiffe://prod.example/x")
	if n := len(a.Bundle().JWTAuthorities()); n != 1 {
		t.Fatalf("%d JWT keys at start", n)
	}
	clk.Add(JWTKeyTTL/2 + time.Minute)
	a.Rotate()
	if n := len(a.Bundle().JWTAuthorities()); n != 2 {
		t.Fatalf("%d JWT keys past half life: the next is not published ahead", n)
	}
	tokOld, _, _ := a.SignJWT(id, []string{"x"}, 0)
	clk.Add(JWTKeyTTL / 2) // the first key stops signing
	a.Rotate()
	tokNew, _, _ := a.SignJWT(id, []string{"x"}, 0)
	if kid(t, tokOld) == kid(t, tokNew) {
		t.Fatal("the signing key did not change")
	}
	if _, ok := a.Bundle().FindJWTAuthority(kid(t, tokOld)); !ok {
		t.Fatal("the retired key left the bundle while its tokens live")
	}
	clk.Add(DefaultJWTTTL + time.Minute)
	a.Rotate()
	if _, ok := a.Bundle().FindJWTAuthority(kid(t, tokOld)); ok {
		t.Fatal("the retired key is still published after its last token expired")
	}
}

func kid(t *testing.T, tok string) string {
	t.Helper()
	var h struct{ Kid string }
	raw, err := jsonPart(tok, 0)
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(raw, &h)
	return h.Kid
}

func TestBundleIsSPIFFEJWKS(t *testing.T) {
	a, _ := newAuthority(t, &clock{t: time.Now()})
	b, err := a.Bundle().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []struct {
			Use string `json:"use"`
			Kty string `json:"kty"`
			X5c []string
			Kid string
		} `json:"keys"`
		Seq     uint64 `json:"spiffe_sequence"`
		Refresh int    `json:"spiffe_refresh_hint"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	uses := map[string]int{}
	for _, k := range doc.Keys {
		uses[k.Use]++
	}
	if uses["x509-svid"] != 1 || uses["jwt-svid"] != 1 || doc.Refresh != 300 || doc.Seq == 0 {
		t.Fatalf("bundle %s", b)
	}
	if _, err := spiffebundle.Parse(td, b); err != nil {
		t.Fatal(err)
	}
}

func TestTemplates(t *testing.T) {
	w := Workload{Namespace: "shop", ServiceAccount: "cart", Pod: "cart-7d9", App: "cart", Labels: map[string]string{"team": "pay"}}
	for tmpl, want := range map[string]string{
		DefaultTemplate:  "spiffe://prod.example/ns/shop/sa/cart",
		AppTemplate:      "spiffe://prod.example/app/cart",
		WorkloadTemplate: "spiffe://prod.example/ns/shop/pod/cart-7d9",
		"spiffe://{trustDomain}/team/{label:team}/{app}": "spiffe://prod.example/team/pay/cart",
	} {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		id, err := tp.ID(td, w)
		if err != nil || id.String() != want {
			t.Errorf("%s: %v %v, want %s", tmpl, id, err, want)
		}
	}
	tp, _ := ParseTemplate(DefaultTemplate)
	// A forged value cannot add path segments or climb.
	for _, bad := range []string{"shop/sa/admin", "..", "a b", "x%2F", ""} {
		w2 := w
		w2.Namespace = bad
		if id, err := tp.ID(td, w2); err == nil {
			t.Errorf("namespace %q gave %s", bad, id)
		}
	}
	w3 := w
	w3.ServiceAccount = ""
	if _, err := tp.ID(td, w3); !errors.Is(err, ErrMissingField) {
		t.Errorf("no service account: %v", err)
	}
	for _, bad := range []string{"spiffe://x/ns/{namespace}", "spiffe://{trustDomain}/static", "spiffe://{trustDomain}/{nope}", "spiffe://{trustDomain}/{app", "spiffe://{trustDomain}/{label:}"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{DefaultTemplate, AppTemplate, "spiffe://{trustDomain}/{label:a}/x", "spiffe://{trustDomain}/{", "spiffe://{trustDomain}/}{app}"} {
		f.Add(s, "ns", "sa")
	}
	f.Fuzz(func(t *testing.T, tmpl, ns, sa string) {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			return
		}
		id, err := tp.ID(td, Workload{Namespace: ns, ServiceAccount: sa, Pod: "p", App: "a", Container: "c", Node: "n"})
		if err != nil {
			return
		}
		if !id.MemberOf(td) || strings.Contains(id.Path(), "//") {
			t.Fatalf("template %q gave %s", tmpl, id)
		}
	})
}

func TestDecide(t *testing.T) {
	now := time.Now()
	ok := Facts{Image: "sha256:a", Certified: true, Heartbeat: now.Add(-time.Minute)}
	if err := Decide(ok, now, DefaultNodeGrace); err != nil {
		t.Fatal(err)
	}
	for want, f := range map[string]Facts{
		ReasonUncertified: {Image: "sha256:a", Heartbeat: now},
		ReasonRevoked:     {Image: "sha256:a", Certified: true, Revoked: true, Heartbeat: now},
		ReasonDrifted:     {Image: "sha256:a", Certified: true, Drifted: true, Heartbeat: now},
		ReasonNodeSilent:  {Image: "sha256:a", Certified: true, Heartbeat: now.Add(-DefaultNodeGrace - time.Second)},
		ReasonUnattested:  {Image: "sha256:a", Certified: true, Heartbeat: now, TEE: &TEEFacts{Detail: "instance revoked"}},
	} {
		var r *Refusal
		if err := Decide(f, now, DefaultNodeGrace); !errors.As(err, &r) || r.Reason != want {
			t.Errorf("%s: %v", want, err)
		}
	}
	// A TEE condition that holds adds nothing; drift still wins over it.
	ok.TEE = &TEEFacts{Holds: true}
	if err := Decide(ok, now, DefaultNodeGrace); err != nil {
		t.Fatal(err)
	}
	ok.Drifted = true
	var r *Refusal
	if err := Decide(ok, now, DefaultNodeGrace); !errors.As(err, &r) || r.Reason != ReasonDrifted {
		t.Fatalf("drifted with a TEE: %v", err)
	}
}

func TestStateIsSealed(t *testing.T) {
	dir := t.TempDir()
	k, _ := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	clk := &clock{t: time.Now()}
	a, root := newAuthority(t, clk)
	if err := WriteRoot(dir, k, root); err != nil {
		t.Fatal(err)
	}
	if err := WriteRoot(dir, k, root); err == nil {
		t.Fatal("overwrote a root")
	}
	if err := SaveState(dir, k, a.State()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{RootKeyFile, StateFile} {
		fi, _ := os.Stat(filepath.Join(dir, f))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a plain key", f)
		}
	}
	cert, r2, err := ReadRoot(dir, k)
	if err != nil || !cert.Equal(root.Cert) || r2 == nil {
		t.Fatalf("ReadRoot: %v", err)
	}
	st, err := LoadState(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{TrustDomain: td, Root: r2, Intermediate: st.Intermediate, JWTKeys: st.JWTKeys, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Intermediate().Equal(a.Intermediate()) {
		t.Fatal("the intermediate did not survive a restart")
	}
	tok, _, _ := b.SignJWT(spiffeid.RequireFromString("spiffe://prod.example/x"), []string{"a"}, 0)
	if _, err := ValidateJWT(tok, a.Bundle().JWTBundle(), "a"); err != nil {
		t.Fatalf("the JWT key did not survive a restart: %v", err)
	}
	wrong, _ := seal.New(bytes.Repeat([]byte{8}, seal.KeySize))
	if _, err := LoadState(dir, wrong); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("wrong key: %v", err)
	}
	os.Chmod(filepath.Join(dir, StateFile), 0o644)
	if _, err := LoadState(dir, k); err == nil {
		t.Fatal("read a state file readable by others")
	}
	if s := root.String(); strings.Contains(s, "D:") || strings.Contains(s, "PRIVATE") {
		t.Fatalf("String shows the key: %s", s)
	}
}
