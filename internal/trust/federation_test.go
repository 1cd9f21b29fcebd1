package trust

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/identity"
)

// TestFederation fetches a peer's bundle from an https_web endpoint,
// keeps the last good one when the endpoint fails or serves garbage, and
// refuses peers that are not https or name no trust domain.
func TestFederation(t *testing.T) {
	partner := spiffeid.RequireTrustDomainFromString("partner.example")
	root, _ := identity.NewRoot(partner, 0, time.Now())
	a, err := identity.New(identity.Config{TrustDomain: partner, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := a.Bundle().Marshal()
	var body []byte = doc
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	p, err := ParsePeer("partner.example=" + srv.URL + "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	f := &Federation{Peers: []Peer{p}, Client: srv.Client()}
	b, err := f.Fetch(t.Context(), p)
	if err != nil || b.TrustDomain() != partner || len(b.X509Authorities()) != 1 {
		t.Fatalf("fetch: %v %v", b, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go f.Run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for len(f.Bundles()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if len(f.Bundles()) != 1 {
		t.Fatal("the federated bundle is not held")
	}
	for _, bad := range [][]byte{[]byte("not json"), []byte(`{"keys":[]}`), []byte(strings.Repeat("x", maxBundle+1))} {
		body = bad
		if _, err := f.Fetch(t.Context(), p); err == nil {
			t.Errorf("a bad bundle (%.20q) was taken", bad)
		}
	}
	body = doc
	if _, err := (&Federation{}).Fetch(t.Context(), p); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an endpoint whose certificate the client does not trust (https_web): %v", err)
	}
	for _, s := range []string{"partner.example", "partner.example=http://x/b", "bad domain=https://x/b"} {
		if _, err := ParsePeer(s); err == nil {
			t.Errorf("ParsePeer(%q) accepted", s)
		}
	}
}
