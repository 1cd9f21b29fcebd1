package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// childAddr waits for the child server's address.
func childAddr(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil {
			return "http://" + string(b)
		}
		if time.Now().After(deadline) {
			t.Fatal("the child server did not listen within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill -9 of the server between recording a response and taking it: after
// the restart the response is taken once (the pod deleted), and the audit
// log records it once and its outcome once.
func TestServerCrashMidResponse(t *testing.T) {
	cl := k8stest.Start(t)
	cl.MustKubectl("create", "namespace", "shop")
	if _, err := cl.KubectlStdin(`apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop}
spec:
  nodeName: node-1
  containers: [{name: web, image: reg.example/web@sha256:`+strings.Repeat("a", 64)+`}]
`, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	uid := strings.TrimSpace(cl.MustKubectl("get", "pod", "web-1", "-n", "shop", "-o", "jsonpath={.metadata.uid}"))
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	pol := filepath.Join(t.TempDir(), "responses.yaml")
	os.WriteFile(pol, []byte("default: {drift: replace}\n"), 0o600)
	cfg := childConfig{DataDir: dir, ResponsePolicy: pol, Kubeconfig: cl.Kubeconfig}

	hb := agentproto.Heartbeat{Node: "node-1", Mode: "prevent", State: agentproto.StateEnforcingFanotify,
		Containers: []agentproto.Container{{ID: "c1", Namespace: "k8s.io", Image: "sha256:" + strings.Repeat("a", 64),
			Labels: map[string]string{agentproto.LabelPodName: "web-1", agentproto.LabelPodNamespace: "shop",
				agentproto.LabelPodUID: uid, agentproto.LabelContainer: "web"}}}}
	batch := agentproto.Batch{Node: "node-1", Spool: "s1", Events: []agentproto.Event{{Seq: 1, Time: time.Now().UTC(),
		Verdict: agentproto.VerdictRefused, Path: "/tmp/x", Container: "c1", Image: "sha256:" + strings.Repeat("a", 64)}}}

	first := startChild(t, cfg, "respond.recorded")
	c := &client{t: t, base: childAddr(t, dir)}
	var operator api.TokenCreated
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "agent", "role": store.RoleOperator}, 201, &operator)
	c.json("POST", agentproto.HeartbeatPath, operator.Token, hb, 200, nil)
	c.json("POST", agentproto.EventsPath, operator.Token, batch, 200, nil)
	first.waitKilled(t)

	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := st.ResponsesPage(t.Context(), "", 0, 10)
	st.Close()
	if err != nil || len(rs) != 1 || rs[0].State != store.ResponsePlanned {
		t.Fatalf("after the crash: %+v %v, want one planned response", rs, err)
	}
	// Bound to a node no kubelet runs, a deleted pod stays, terminating.
	deleting := func() bool {
		out, err := cl.Kubectl("get", "pod", "web-1", "-n", "shop", "-o", "jsonpath={.metadata.deletionTimestamp}")
		return err != nil || strings.TrimSpace(out) != ""
	}
	if deleting() {
		t.Fatal("the pod was deleted before the failpoint")
	}

	// Restarted: the agent's next heartbeat, and the recorded response is
	// taken.
	second := startChild(t, cfg, "")
	c.base = childAddr(t, dir)
	c.json("POST", agentproto.HeartbeatPath, operator.Token, hb, 200, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out struct{ Responses []store.Response }
		c.json("GET", "/api/v1/runtime/responses", admin.Token, nil, 200, &out)
		if len(out.Responses) == 1 && out.Responses[0].State == store.ResponseDone {
			if out.Responses[0].ID != rs[0].ID {
				t.Errorf("a second response: %+v", out.Responses)
			}
			break
		}
		if len(out.Responses) > 1 || time.Now().After(deadline) {
			t.Fatalf("responses after the restart: %+v", out.Responses)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !deleting() {
		t.Error("the resumed response did not delete the pod")
	}
	second.stop(t)

	st, err = OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var recorded, done int
	st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_log WHERE action = 'runtime.response' AND object = 'pod:shop/web-1'`).Scan(&recorded)
	st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_log WHERE action = 'runtime.response.done' AND object = 'pod:shop/web-1'`).Scan(&done)
	if recorded != 1 || done != 1 {
		t.Errorf("audit: %d runtime.response and %d runtime.response.done entries, want 1 and 1", recorded, done)
	}
}
