package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/nodeauth"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// agentCluster is a real kube-apiserver with the agents' service account
// bulwark-system/bulwark-agent, another one, and a pod of each on nodes.
type agentCluster struct {
	cl *k8stest.Cluster
	kc *kube.Client
}

func newAgentCluster(t *testing.T) *agentCluster {
	t.Helper()
	cl := k8stest.Start(t)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c := &agentCluster{cl: cl, kc: kc}
	for _, p := range []struct{ name, sa, node string }{
		{"agent-a", "bulwark-agent", "node-a"},
		{"agent-b", "bulwark-agent", "node-b"},
		{"other-a", "other", "node-a"},
	} {
		cl.ServiceAccountPod(t, "bulwark-system", p.sa, p.name, p.node)
	}
	return c
}

func (c *agentCluster) token(t *testing.T, sa, pod, audience string) string {
	t.Helper()
	tok, err := c.cl.PodToken("bulwark-system", sa, pod, audience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (c *agentCluster) reviewer(t *testing.T, kc *kube.Client, cacheFor time.Duration) *nodeauth.Reviewer {
	t.Helper()
	r, err := nodeauth.New(nodeauth.Config{Client: kc, ServiceAccount: "bulwark-system/bulwark-agent", CacheFor: cacheFor})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func heartbeat(node string) agentproto.Heartbeat {
	return agentproto.Heartbeat{Node: node, Mode: "detect", State: agentproto.StateDetectingOnly}
}

// TestAgentServiceAccountToken: an agent's projected service account
// token, reviewed by a real kube-apiserver, speaks for the node of its pod
// and nothing else. The token of node-a's agent heartbeats for node-a,
// audited as the service account, pod and node; it is refused (403) for
// node-b and on every viewer, operator and admin route. A token of
// another service account, for another audience, not bound to a pod, or
// of no cluster at all is 401. Once the pod is deleted its token is
// refused within the cache's lifetime. A static node:NAME API token still
// works beside them.
func TestAgentServiceAccountToken(t *testing.T) {
	c := newAgentCluster(t)
	h, sti := newTestAPI(t)
	st := sti.(*store.Store)
	const cacheFor = 2 * time.Second
	h.UseAgentAuth(c.reviewer(t, c.kc, cacheFor))
	ctx := t.Context()

	tokA := c.token(t, "bulwark-agent", "agent-a", "bulwark")
	if code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, tokA, heartbeat("node-a")); code != http.StatusOK {
		t.Fatalf("node-a's agent token, its own heartbeat: %d %s", code, body)
	}
	recs, err := st.AuditPage(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := "serviceaccount:bulwark-system/bulwark-agent pod:bulwark-system/agent-a node:node-a"
	if len(recs) == 0 || recs[len(recs)-1].Actor != want || recs[len(recs)-1].Object != "node:node-a" {
		t.Errorf("audit %+v: want the last entry by %q on node:node-a", recs, want)
	}
	for _, r := range recs {
		if strings.Contains(r.Actor+string(r.After)+string(r.Before), tokA[:20]) {
			t.Errorf("the token is in the audit log: %+v", r)
		}
	}

	// Another node, every agent route that names one.
	if code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, tokA, heartbeat("node-b")); code != http.StatusForbidden ||
		!strings.Contains(string(body), `bound to node \"node-a\"`) {
		t.Errorf("node-a's agent token for node-b: %d %s, want 403", code, body)
	}
	if code, body := serveJSON(h, "POST", "/api/v1/governance/flows", tokA, agentproto.FlowBatch{Node: "node-b"}); code != http.StatusForbidden {
		t.Errorf("flows for node-b: %d %s, want 403", code, body)
	}
	if nodes, _ := st.NodesPage(ctx, "", 100); len(nodes) != 1 || nodes[0].Name != "node-a" {
		t.Errorf("nodes %+v: want node-a only", nodes)
	}
	// node-b's own agent may.
	if code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, c.token(t, "bulwark-agent", "agent-b", "bulwark"), heartbeat("node-b")); code != http.StatusOK {
		t.Errorf("node-b's agent token, its own heartbeat: %d %s", code, body)
	}

	// Viewer, operator and admin routes.
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/images"},
		{"GET", "/api/v1/runtime/nodes"},
		{"POST", "/api/v1/scans"},
		{"POST", "/api/v1/tokens"},
		{"GET", "/api/v1/audit"},
	} {
		code, body := serveJSON(h, r.method, r.path, tokA, map[string]string{"image": "reg.example/app:1", "name": "x", "role": "admin"})
		if code != http.StatusForbidden {
			t.Errorf("agent token, %s %s: %d %s, want 403", r.method, r.path, code, body)
		}
	}

	// Tokens the cluster does not vouch for as the agents'.
	for name, tok := range map[string]string{
		"another service account": c.token(t, "other", "other-a", "bulwark"),
		"another audience":        c.token(t, "bulwark-agent", "agent-a", "https://kubernetes.default.svc"),
		"not bound to a pod": func() string {
			out, err := c.cl.Kubectl("create", "token", "bulwark-agent", "-n", "bulwark-system", "--audience", "bulwark")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(out)
		}(),
		"a forged JWT": "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":["bulwark"],"exp":`+strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`,"sub":"system:serviceaccount:bulwark-system:bulwark-agent"}`)) + ".c2ln",
		"not a JWT":    "hello",
	} {
		code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, tok, heartbeat("node-a"))
		if code != http.StatusUnauthorized || !strings.Contains(string(body), "invalid token") {
			t.Errorf("%s: %d %s, want 401", name, code, body)
		}
		t.Logf("%s: %d %s", name, code, body)
	}

	// A static node-bound API token, beside.
	_, static, _ := st.CreateToken(ctx, NodeTokenPrefix+"node-c", store.RoleOperator)
	if code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, static, heartbeat("node-c")); code != http.StatusOK {
		t.Errorf("static node token: %d %s", code, body)
	}
	if code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, static, heartbeat("node-a")); code != http.StatusForbidden {
		t.Errorf("static node token for another node: %d %s", code, body)
	}

	// The answers are counted for the metrics.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`bulwark_agent_token_reviews_total{result="reviewed"} 2`, `bulwark_agent_token_reviews_total{result="refused"} 5`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, rec.Body.String())
		}
	}
	if !regexp.MustCompile(`bulwark_agent_token_reviews_total\{result="cached"\} [1-9]`).MatchString(rec.Body.String()) {
		t.Errorf("no cached answer counted:\n%s", rec.Body.String())
	}

	// The pod deleted: the cached review holds at most cacheFor.
	if err := c.kc.Delete(ctx, "/api/v1/namespaces/bulwark-system/pods/agent-a", &metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for {
		code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, tokA, heartbeat("node-a"))
		if code == http.StatusUnauthorized {
			t.Logf("refused %s after the pod's deletion: %s", time.Since(deleted).Round(time.Millisecond), body)
			break
		}
		if code != http.StatusOK || time.Since(deleted) > cacheFor+time.Second {
			t.Fatalf("%s after the pod's deletion: %d %s, want 401 within %s", time.Since(deleted), code, body, cacheFor)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAgentServiceAccountTokenClusterDown: a token that cannot be reviewed
// because the cluster does not answer, or refuses the server's own
// identity (no RBAC for TokenReviews), is 503, neither 401 (the agent
// would give up a valid token) nor allowed.
func TestAgentServiceAccountTokenClusterDown(t *testing.T) {
	c := newAgentCluster(t)
	tok := c.token(t, "bulwark-agent", "agent-a", "bulwark")

	down, err := kube.Load(c.cl.UnreachableKubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	// A server identity the cluster knows and grants nothing.
	c.cl.MustKubectl("create", "serviceaccount", "bulwark-server", "-n", "bulwark-system")
	serverTok := strings.TrimSpace(c.cl.MustKubectl("create", "token", "bulwark-server", "-n", "bulwark-system"))
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %s, certificate-authority-data: %s}}]
users: [{name: u, user: {token: %s}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, c.cl.Server, base64.StdEncoding.EncodeToString(c.cl.CAPEM), serverTok), 0o600); err != nil {
		t.Fatal(err)
	}
	unprivileged, err := kube.Load(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for name, kc := range map[string]*kube.Client{"cluster down": down, "no RBAC for the server": unprivileged} {
		h, _ := newTestAPI(t)
		h.UseAgentAuth(c.reviewer(t, kc, 0))
		code, body := serveJSON(h, "POST", agentproto.HeartbeatPath, tok, heartbeat("node-a"))
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "cannot be checked now") {
			t.Errorf("%s: %d %s, want 503", name, code, body)
		}
	}
}
