package secretstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
)

// BenchmarkDecision is the release decision without the audit entry: the
// trust view's answer for an identity (1,000 running containers) and the
// policy applied to it.
func BenchmarkDecision(b *testing.B) {
	ctx := context.Background()
	_, st := newService(b, "", nil, nil)
	var pods []agentproto.Container
	for i := range 1000 {
		pods = append(pods, pod(fmt.Sprintf("c%d", i), goodDigest, "shop", fmt.Sprintf("p%d", i)))
	}
	heartbeatTB(b, st, "node-eu", pods...)
	st.SetCertification(ctx, goodDigest, "certified", "")
	tmpl, _ := identity.ParseTemplate(identity.WorkloadTemplate)
	tr := &Trust{Store: st, TrustDomain: spiffeid.RequireTrustDomainFromString("prod.example"), Template: tmpl, Policy: "prod",
		Region: func(string) string { return "eu-west-1" }}
	if err := tr.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	pol := Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/shop/**"}, CertifiedUnder: "prod", NoDrift: true, Regions: []string{"eu-west-1"}}
	g := grants{}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w, ok := tr.Workload(fmt.Sprintf("spiffe://prod.example/ns/shop/pod/p%d", i%1000))
		if !ok {
			b.Fatal("unknown")
		}
		if err := decide("k", pol, []string{"eu-west-1"}, nil, w, g.Granted); err != nil {
			b.Fatal(err)
		}
	}
}
