package secretstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
)

const (
	goodDigest  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	plainDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// heartbeat records node's containers as the agent API does.
func heartbeat(t *testing.T, st *store.Store, node string, cs ...agentproto.Container) {
	t.Helper()
	heartbeatTB(t, st, node, cs...)
}

func heartbeatTB(t testing.TB, st *store.Store, node string, cs ...agentproto.Container) {
	t.Helper()
	b, _ := json.Marshal(cs)
	if _, err := st.PutNode(context.Background(), store.Node{Name: node, Mode: "prevent", State: "enforcing", Containers: string(b)}); err != nil {
		t.Fatal(err)
	}
}

func pod(id, digest, ns, name string) agentproto.Container {
	return agentproto.Container{ID: id, Namespace: "k8s.io", Image: digest, Labels: map[string]string{
		agentproto.LabelPodNamespace: ns, agentproto.LabelPodName: name}}
}

// TestTrustDecidesFromTheStore releases a secret to a workload only on
// what the server's store says of it: the agent's heartbeat (which
// container runs which digest on which node), the certification, drift
// events, the node's region and the image's owner application. Each
// refusal is audited with its reason.
func TestTrustDecidesFromTheStore(t *testing.T) {
	ctx := context.Background()
	regions := map[string]string{"node-eu": "eu-west-1", "node-us": "us-east-1"}
	var tr *Trust
	s, st := newService(t, "", nil, grants{"checkout": {"pii-eu"}})
	tmpl, err := identity.ParseTemplate(identity.WorkloadTemplate)
	if err != nil {
		t.Fatal(err)
	}
	tr = &Trust{Store: st, TrustDomain: spiffeid.RequireTrustDomainFromString("prod.example"), Template: tmpl,
		Policy: "prod", Region: func(n string) string { return regions[n] }}
	s.workloads = tr

	for _, d := range []string{goodDigest, plainDigest} {
		if err := st.PutImage(ctx, store.Image{Digest: d, Repository: "registry.example/checkout"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutApplication(ctx, store.Application{Name: "checkout", Lifecycle: store.LifecycleActive,
		Repositories: []string{"registry.example/checkout"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCertification(ctx, goodDigest, store.Certified, ""); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, st, "node-eu", pod("c-good", goodDigest, "shop", "good"), pod("c-plain", plainDigest, "shop", "plain"),
		pod("c-drift", goodDigest, "shop", "drifter"))
	heartbeat(t, st, "node-us", pod("c-us", goodDigest, "shop", "faraway"))
	if _, err := st.AddRuntimeEvents(ctx, []store.RuntimeEvent{{Node: "node-eu", Spool: "s", Seq: 1, Time: time.Now(),
		Verdict: "refused", Path: "/tmp/x", Container: "c-drift", Image: goodDigest}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	pol := Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/shop/**"}, CertifiedUnder: "prod", NoDrift: true, RequireGrant: true}
	if _, err := s.Put(ctx, "admin", "shop/db", Spec{Kind: KindKV, Classes: []string{"pii-eu"}, Policy: pol}, kv("password", "pw-1")); err != nil {
		t.Fatal(err)
	}
	id := func(pod string) string { return "spiffe://prod.example/ns/shop/pod/" + pod }
	rel, err := s.Release(ctx, id("good"), "shop/db")
	if err != nil || rel.Value.Data["password"] != "pw-1" {
		t.Fatalf("certified, undrifted, granted, in region: %v %v", rel, err)
	}
	for pod, want := range map[string]string{
		"plain":   "is not certified under policy \"prod\"",
		"drifter": "drifted",
		"faraway": "node node-us is in region us-east-1",
		"nobody":  "knows no running workload",
	} {
		_, err := s.Release(ctx, id(pod), "shop/db")
		var d *Denied
		if !errors.As(err, &d) || !strings.Contains(d.Reason, want) {
			t.Errorf("%s: %v, want a refusal with %q", pod, err, want)
		}
	}
	// The owner application loses its grant: refused for want of it.
	s.grants = grants{}
	if _, err := s.Release(ctx, id("good"), "shop/db"); err == nil || !strings.Contains(err.Error(), "not granted data class pii-eu") {
		t.Fatalf("without the grant: %v", err)
	}
	// Drift reported later withdraws the release at the next refresh.
	s.grants = grants{"checkout": {"pii-eu"}}
	st.AddRuntimeEvents(ctx, []store.RuntimeEvent{{Node: "node-eu", Spool: "s", Seq: 2, Time: time.Now(), Verdict: "reported",
		Path: "/bin/sh", Container: "c-good", Image: goodDigest}})
	if err := tr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ctx, id("good"), "shop/db"); err == nil || !strings.Contains(err.Error(), "drifted") {
		t.Fatalf("after drift: %v", err)
	}
	// A silent node's workloads are unknown.
	tr.Now = func() time.Time { return time.Now().Add(time.Hour) }
	tr.Refresh(ctx)
	if _, ok := tr.Workload(id("faraway")); ok {
		t.Fatal("a workload of a silent node is known")
	}
	reasons := map[string]bool{}
	for _, r := range auditLog(t, st) {
		if r.Action == "secret.refuse" {
			var d map[string]any
			json.Unmarshal(r.After, &d)
			if d["digest"] == nil || d["identity"] == nil || d["node"] == nil || d["region"] == nil {
				t.Errorf("refusal without digest/identity/node/region: %s", r.After)
			}
			reasons[d["reason"].(string)] = true
		}
		if strings.Contains(string(r.After), "pw-1") {
			t.Fatalf("the value in the audit log: %s", r.After)
		}
	}
	if len(reasons) < 5 {
		t.Fatalf("refusal reasons audited: %v", reasons)
	}
}

func TestTrustSharedIdentityIsTheLeastTrusted(t *testing.T) {
	ctx := context.Background()
	_, st := newService(t, "", nil, nil)
	tmpl, _ := identity.ParseTemplate("spiffe://{trustDomain}/ns/{namespace}")
	tr := &Trust{Store: st, TrustDomain: spiffeid.RequireTrustDomainFromString("prod.example"), Template: tmpl, Policy: "prod",
		Region: func(n string) string { return map[string]string{"a": "eu-west-1", "b": "us-east-1"}[n] }}
	st.SetCertification(ctx, goodDigest, store.Certified, "")
	heartbeat(t, st, "a", pod("c1", goodDigest, "shop", "p1"))
	heartbeat(t, st, "b", pod("c2", plainDigest, "shop", "p2"))
	if err := tr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	w, ok := tr.Workload("spiffe://prod.example/ns/shop")
	if !ok || len(w.Certified) != 0 || w.Region != "" || w.Node != "a,b" {
		t.Fatalf("merged view = %+v", w)
	}
}

// TestTrustIssuedIdentityIsItsContainer: an identity the identity service
// issued is judged on the container it was issued to, whatever the
// template would name.
func TestTrustIssuedIdentityIsItsContainer(t *testing.T) {
	ctx := context.Background()
	_, st := newService(t, "", nil, nil)
	tmpl, _ := identity.ParseTemplate(identity.DefaultTemplate) // needs a service account the heartbeat lacks
	issued := map[string][2]string{"spiffe://prod.example/ns/shop/sa/api": {"node-eu", "c-good"}}
	tr := &Trust{Store: st, TrustDomain: spiffeid.RequireTrustDomainFromString("prod.example"), Template: tmpl, Policy: "prod",
		Issued: func(id string) (string, string, bool) { nc, ok := issued[id]; return nc[0], nc[1], ok }}
	st.SetCertification(ctx, goodDigest, store.Certified, "")
	heartbeat(t, st, "node-eu", pod("c-good", goodDigest, "shop", "good"))
	if err := tr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	w, ok := tr.Workload("spiffe://prod.example/ns/shop/sa/api")
	if !ok || w.Node != "node-eu" || w.Digest != goodDigest || len(w.Certified) != 1 || w.ID != "spiffe://prod.example/ns/shop/sa/api" {
		t.Fatalf("issued identity: %+v %v", w, ok)
	}
	if _, ok := tr.Workload("spiffe://prod.example/ns/shop/sa/other"); ok {
		t.Fatal("an identity neither issued nor nameable is known")
	}
	issued["spiffe://prod.example/ns/shop/sa/gone"] = [2]string{"node-eu", "c-stopped"}
	if _, ok := tr.Workload("spiffe://prod.example/ns/shop/sa/gone"); ok {
		t.Fatal("an identity issued to a container no longer running is known")
	}
}

// TestTrustTEE: a policy's tee: condition reads the attestation status
// of the workload's confidential instances.
func TestTrustTEE(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t, "", nil, nil)
	tmpl, _ := identity.ParseTemplate(identity.WorkloadTemplate)
	tr := &Trust{Store: st, TrustDomain: spiffeid.RequireTrustDomainFromString("prod.example"), Template: tmpl, Policy: "prod",
		TEE: func(id string) string {
			if strings.HasSuffix(id, "/enclave") {
				return "sev-snp"
			}
			return ""
		}}
	s.workloads = tr
	st.SetCertification(ctx, goodDigest, store.Certified, "")
	heartbeat(t, st, "n", pod("c1", goodDigest, "shop", "enclave"), pod("c2", goodDigest, "shop", "plain"))
	if err := tr.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	pol := Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/shop/**"}, TEE: "sev-snp"}
	if _, err := s.Put(ctx, "admin", "k", Spec{Kind: KindKV, Policy: pol}, kv("a", "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ctx, "spiffe://prod.example/ns/shop/pod/enclave", "k"); err != nil {
		t.Fatalf("attested workload: %v", err)
	}
	if _, err := s.Release(ctx, "spiffe://prod.example/ns/shop/pod/plain", "k"); err == nil || !strings.Contains(err.Error(), "holds no sev-snp attestation") {
		t.Fatalf("unattested workload: %v", err)
	}
}
