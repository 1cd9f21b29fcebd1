package workloadapi

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/identity"
)

// TestFederatedBundlesReachWorkloads: the bundles of a federated trust
// domain reach a go-spiffe client with its X.509-SVID (federated bundles)
// and its bundle streams, and a JWT-SVID of that domain validates
// through ValidateJWTSVID, while one of a domain not federated does not.
func TestFederatedBundlesReachWorkloads(t *testing.T) {
	partner := spiffeid.RequireTrustDomainFromString("partner.example")
	root, err := identity.NewRoot(partner, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pa, err := identity.New(identity.Config{TrustDomain: partner, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, cart(certified))
	f.li.mu.Lock()
	f.li.fed = append(f.li.fed, pa.Bundle())
	f.li.mu.Unlock()
	// Bundles are fetched when due (every refresh hint): make them due now.
	f.m.mu.Lock()
	f.m.bundleFetched = time.Time{}.Add(time.Hour)
	f.m.mu.Unlock()
	f.m.Recheck()
	ctx := ctxT(t, 20*time.Second)
	c := client(t, f)
	var xc *x509bundle.Set
	for {
		got, err := c.FetchX509Context(ctx)
		if err != nil {
			t.Fatal(err)
		}
		xc = got.Bundles
		if xc.Has(partner) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !xc.Has(partner) || !xc.Has(td) {
		t.Fatal("the federated bundle did not reach the workload")
	}
	jb, err := c.FetchJWTBundles(ctx)
	if err != nil || !jb.Has(partner) {
		t.Fatalf("JWT bundles: %v %v", jb, err)
	}
	tok, _, err := pa.SignJWT(spiffeid.RequireFromPath(partner, "/billing"), []string{"db"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.ValidateJWTSVID(ctx, tok, "db"); err != nil || s.ID.TrustDomain() != partner {
		t.Fatalf("a federated JWT-SVID: %v %v", s, err)
	}
	if _, err := c.ValidateJWTSVID(ctx, foreignJWT(t), "db"); err == nil {
		t.Fatal("a JWT-SVID of a domain not federated validated")
	}
}
