package nodeauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
)

// agentPod starts a cluster with the agents' service account and one pod
// of it on node-1, and returns it, a client and a token bound to the pod.
func agentPod(t *testing.T) (cl *k8stest.Cluster, kc *kube.Client, token string) {
	t.Helper()
	cl = k8stest.Start(t)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cl.ServiceAccountPod(t, "bulwark-system", "bulwark-agent", "agent-1", "node-1")
	if token, err = cl.PodToken("bulwark-system", "bulwark-agent", "agent-1", "bulwark", time.Hour); err != nil {
		t.Fatal(err)
	}
	return cl, kc, token
}

// A review is reused from the cache (the cluster is not asked: here it
// could not answer) until CacheFor has passed, and never past the token's
// expiry, even when CacheFor would reach further; then the cluster is asked
// again, and its absence is an UnavailableError, not a refusal.
func TestReviewCachedUntilLifetimeAndExpiry(t *testing.T) {
	cl, kc, tok := agentPod(t)
	down, err := kube.Load(cl.UnreachableKubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	c, err := parseClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(c.Exp, 0)

	for _, tc := range []struct {
		name  string
		start time.Time     // the reviewer's clock at the review
		after time.Duration // when the cache no longer answers
		err   string
	}{
		{"lifetime", time.Now(), 30 * time.Second, "creating a TokenReview"},
		{"expiry", exp.Add(-10 * time.Second), 10 * time.Second, "expired at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Config{Client: kc, ServiceAccount: "bulwark-system/bulwark-agent", CacheFor: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			now := tc.start
			r.now = func() time.Time { return now }
			a, err := r.Authenticate(ctx, tok, "")
			if err != nil {
				t.Fatal(err)
			}
			if a.Node != "node-1" || a.Pod != "agent-1" || a.PodUID == "" || a.Actor() != "serviceaccount:bulwark-system/bulwark-agent pod:bulwark-system/agent-1 node:node-1" {
				t.Errorf("agent %+v, actor %q", a, a.Actor())
			}
			r.client = down // the cluster gone
			now = tc.start.Add(tc.after - time.Second)
			if _, err := r.Authenticate(ctx, tok, ""); err != nil {
				t.Errorf("%s before the cache's end: %v", tc.after-time.Second, err)
			}
			now = tc.start.Add(tc.after)
			_, err = r.Authenticate(ctx, tok, "")
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("at the cache's end: %v, want %q", err, tc.err)
			}
			var unavailable *UnavailableError
			if tc.name == "lifetime" && !errors.As(err, &unavailable) {
				t.Errorf("the cluster gone: %T %v, want an UnavailableError", err, err)
			}
		})
	}
}

// The cache holds at most MaxCached reviews: the expired ones go first,
// then all.
func TestCacheBounded(t *testing.T) {
	c := newCache(3)
	now := time.Unix(1000, 0)
	for i := range 3 {
		c.put([32]byte{byte(i)}, Agent{Node: "n"}, now.Add(time.Duration(i)*time.Second), now)
	}
	c.put([32]byte{9}, Agent{}, now.Add(time.Minute), now.Add(1500*time.Millisecond)) // 0 and 1 have expired
	if c.len() != 2 {
		t.Errorf("%d entries, want the 2 unexpired", c.len())
	}
	c.put([32]byte{10}, Agent{}, now.Add(time.Minute), now)
	c.put([32]byte{11}, Agent{}, now.Add(time.Minute), now) // full, none expired
	if c.len() > 3 {
		t.Errorf("%d entries, more than 3", c.len())
	}
	if _, ok := c.get([32]byte{11}, now); !ok {
		t.Error("the newest entry is not cached")
	}
}

// Config is checked: no service account, a malformed one, no cluster.
func TestNewRefusesBadConfig(t *testing.T) {
	kc := &kube.Client{Server: "https://127.0.0.1:1"}
	for _, cfg := range []Config{
		{Client: kc},
		{Client: kc, ServiceAccount: "bulwark-agent"},
		{Client: kc, ServiceAccount: "/bulwark-agent"},
		{Client: kc, ServiceAccount: "ns/a:b"},
		{ServiceAccount: "ns/sa"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

// hangingCluster accepts requests, counts them and never answers.
func hangingCluster(t *testing.T, asked *atomic.Int64) *kube.Client {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // first: the handlers return, then Close
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %s}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, srv.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	kc, err := kube.Load(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// forged is a JWT that passes the local checks (audience, expiry) and that
// only the cluster could refuse.
func forged(i int) string {
	claims := fmt.Sprintf(`{"aud":["bulwark"],"exp":%d,"jti":"%d"}`, time.Now().Add(time.Hour).Unix(), i)
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
}

// flood starts a Reviewer on a cluster that never answers (asked counts
// its requests) and n reviews of forged tokens from source(i), which end
// with the test.
func flood(t *testing.T, asked *atomic.Int64, n int, source func(i int) string) *Reviewer {
	t.Helper()
	r, err := New(Config{Client: hangingCluster(t, asked), ServiceAccount: "bulwark-system/bulwark-agent"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Authenticate(ctx, forged(i), source(i))
		}()
	}
	return r
}

// Unauthenticated tokens cannot become a flood on the apiserver: at most
// maxConcurrent reviews are in flight; the next waits for a slot while its
// request lasts, then is an UnavailableError (503), not a review.
func TestReviewsInFlightBounded(t *testing.T) {
	var asked atomic.Int64
	r := flood(t, &asked, maxConcurrent, func(i int) string { return fmt.Sprint("10.0.0.", i) })
	for asked.Load() < maxConcurrent { // every slot is held by a review at the apiserver
		time.Sleep(10 * time.Millisecond)
	}
	short, cancelShort := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancelShort()
	_, err := r.Authenticate(short, forged(-1), "")
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "review slots") {
		t.Errorf("a review beyond the bound: %v, want an UnavailableError waiting for a slot", err)
	}
	if asked.Load() != maxConcurrent {
		t.Errorf("the apiserver was asked %d reviews, want %d", asked.Load(), maxConcurrent)
	}
}

// The audience is the cluster's check too, not only the early refusal
// from the token's own claims: a review of a token for another audience
// (past that refusal) is refused by the apiserver.
func TestReviewAudienceCheckedByCluster(t *testing.T) {
	cl, kc, _ := agentPod(t)
	other, err := cl.PodToken("bulwark-system", "bulwark-agent", "agent-1", "vault", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Client: kc, ServiceAccount: "bulwark-system/bulwark-agent"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(t.Context(), other, ""); err == nil || !strings.Contains(err.Error(), `not for audience "bulwark"`) {
		t.Errorf("early refusal: %v", err)
	}
	_, err = r.review(t.Context(), other)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "the cluster does not authenticate it") {
		t.Errorf("the cluster's review of a token for another audience: %v, want a refusal", err)
	}
}

// One source's flood of tokens to review holds at most perSource of the
// review slots: a token from another source (a real agent) is reviewed at
// once, not after the flood's. Before the bound one address with 16
// requests in flight took every slot, and the agent waited for them (here,
// with an apiserver that does not answer, until its request ended: 503).
func TestReviewsPerSourceBounded(t *testing.T) {
	var asked atomic.Int64
	r := flood(t, &asked, 4*maxConcurrent, func(int) string { return "10.0.0.66" })
	deadline := time.Now().Add(5 * time.Second)
	for asked.Load() < perSource && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // more would have come by now
	if n := asked.Load(); n != perSource {
		t.Errorf("one source's flood: %d reviews at the apiserver, want %d", n, perSource)
	}
	agent, cancelAgent := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancelAgent()
	before := asked.Load()
	go r.Authenticate(agent, forged(-1), "10.0.0.7")
	for asked.Load() == before && agent.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if asked.Load() == before {
		t.Error("another source's token waited behind the flood: never reviewed")
	}
	if n := r.sources.len(); n != 2 {
		t.Errorf("%d sources counted, want 2", n)
	}
}

// Tokens of the agents' service account that are not bound to a pod on a
// node are refused: bound to a Secret, bound to a Node (the kubelet's own
// binding, no pod), and a pod's token after its pod was deleted and
// another made under the same name (another UID), by the cluster or by
// the pod check. A pod-bound token of a pod on no node is refused too.
func TestReviewRefusesTokensNotOfAPodOnANode(t *testing.T) {
	cl, kc, old := agentPod(t)
	r, err := New(Config{Client: kc, ServiceAccount: "bulwark-system/bulwark-agent", CacheFor: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	cl.MustKubectl("create", "secret", "generic", "s", "-n", "bulwark-system")
	bound := func(kind, name string) string {
		return strings.TrimSpace(cl.MustKubectl("create", "token", "bulwark-agent", "-n", "bulwark-system", "--audience", "bulwark",
			"--bound-object-kind", kind, "--bound-object-name", name))
	}
	if _, err := cl.KubectlStdin("apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n", "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	toks := map[string]string{"bound to a Secret": bound("Secret", "s"), "bound to a Node": bound("Node", "node-1")}
	// A pod with no node: its own token carries no node name.
	if _, err := cl.KubectlStdin(`apiVersion: v1
kind: Pod
metadata: {name: pending, namespace: bulwark-system}
spec:
  serviceAccountName: bulwark-agent
  containers: [{name: c, image: registry.example/app}]
`, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	toks["of a pod on no node"] = bound("Pod", "pending")
	for name, tok := range toks {
		_, err := r.Authenticate(t.Context(), tok, "")
		var refused *RefusedError
		if !errors.As(err, &refused) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := r.Authenticate(t.Context(), old, ""); err != nil {
		t.Fatalf("the pod's own token: %v", err)
	}
	cl.MustKubectl("delete", "pod", "agent-1", "-n", "bulwark-system", "--grace-period=0", "--force")
	cl.ServiceAccountPod(t, "bulwark-system", "bulwark-agent", "agent-1", "node-1")
	_, err = r.Authenticate(t.Context(), old, "")
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Errorf("the old pod's token after a new pod of the same name: %v, want a refusal", err)
	}
	t.Logf("old token, pod recreated: %v", err)
}
