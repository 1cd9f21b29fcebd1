package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

// TestIdentityServiceAccountFromCluster: with a cluster (a real
// kube-apiserver), the default template names a pod by the service
// account the API server says it runs as, whatever the agent claims; a
// wrong pod UID, a missing pod, a pod of another node and a pod not yet
// scheduled are refused with the reason, never guessed.
func TestIdentityServiceAccountFromCluster(t *testing.T) {
	cl := k8stest.Start(t)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := kc.Create(ctx, "/api/v1/namespaces", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := kc.Create(ctx, "/api/v1/namespaces/shop/serviceaccounts", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "payments"}}, nil); err != nil {
		t.Fatal(err)
	}
	newPod := func(name, sa, node string) corev1.Pod {
		var p corev1.Pod
		in := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app"}}}}
		if err := kc.Create(ctx, "/api/v1/namespaces/shop/pods", &in, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pay := newPod("pay-1", "payments", "node-1")
	other := newPod("pay-2", "payments", "node-9")
	pending := newPod("pay-3", "payments", "")

	f := newIdentityAPI(t)
	a, err := identity.New(identity.Config{TrustDomain: f.td, Root: mustRoot(t, f)})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := identity.ParseTemplate(identity.DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	f.h.UseIdentity(IdentityConfig{Authority: a, Template: tmpl, Facts: trust.Facts(f.st), Feed: trust.NewFeed(f.st, time.Second, nil),
		Decisions: f.reg, ServiceAccounts: &kube.ServiceAccounts{Client: kc}})
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)

	_, csr := newCSR(t)
	ask := func(pod, uid, claimedSA string) (int, string) {
		req := agentproto.X509Request{Node: "node-1", CSR: csr, Workload: agentproto.Workload{Container: "c1", Image: certifiedDigest,
			Namespace: "shop", Pod: pod, ServiceAccount: claimedSA, Labels: map[string]string{agentproto.LabelPodUID: uid}}}
		b, _ := json.Marshal(req)
		hr, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+agentproto.IdentityX509Path, bytes.NewReader(b))
		hr.Header.Set("Authorization", "Bearer "+f.op)
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for i := range 2 { // the second answer comes from the cache
		code, body := ask("pay-1", string(pay.UID), "cluster-admin")
		var got agentproto.X509Response
		json.Unmarshal([]byte(body), &got)
		if code != http.StatusOK || got.SpiffeID != "spiffe://test.example/ns/shop/sa/payments" {
			t.Fatalf("ask %d: %d %s, want spiffe://test.example/ns/shop/sa/payments", i, code, body)
		}
	}
	// The JWT route answers the ID resolved the same way.
	jw := agentproto.JWTRequest{Node: "node-1", Audiences: []string{"db"}, Workload: agentproto.Workload{Container: "c1", Image: certifiedDigest,
		Namespace: "shop", Pod: "pay-1", Labels: map[string]string{agentproto.LabelPodUID: string(pay.UID)}}}
	code, body := f.call("POST", agentproto.IdentityJWTPath, f.op, jw)
	if code != http.StatusOK || !strings.Contains(string(body), `"spiffeID": "spiffe://test.example/ns/shop/sa/payments"`) {
		t.Fatalf("JWT-SVID: %d %s", code, body)
	}
	for _, c := range []struct{ name, pod, uid, want string }{
		{"wrong UID", "pay-1", string(other.UID), "has UID"},
		{"another pod's UID (cached)", "pay-2", string(pay.UID), "is pod shop/pay-1"},
		{"missing pod", "gone", "0f0f0f0f-0000-0000-0000-000000000000", "does not exist"},
		{"pod on another node", "pay-2", string(other.UID), "runs on node node-9"},
		{"pod not scheduled", "pay-3", string(pending.UID), "on no node yet"},
		{"no UID", "pay-1", "", "no pod UID"},
	} {
		code, body := ask(c.pod, c.uid, "payments")
		if code != http.StatusForbidden || !strings.Contains(body, `"reason": "no-id"`) || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 403 no-id with %q", c.name, code, body, c.want)
		}
	}
	recs, err := f.st.AuditPage(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range recs {
		if r.Action == "identity.refuse" && strings.Contains(string(r.After), "resolving the service account") {
			refused++
		}
	}
	if refused != 6 {
		t.Errorf("%d audited refusals resolving service accounts, want 6", refused)
	}
}

func mustRoot(t *testing.T, f *identityFixture) *identity.CA {
	t.Helper()
	root, err := identity.NewRoot(f.td, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return root
}
