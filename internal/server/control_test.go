package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// waitFor polls cond every 20 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func heartbeat(node string, digest, pod string, pkgs ...agentproto.Package) agentproto.Heartbeat {
	hb := agentproto.Heartbeat{Node: node, Mode: "prevent", State: agentproto.StateEnforcingFanotify, Kernel: "6.1.0-test",
		Region: "eu-west", Distro: &agentproto.Distro{ID: "debian", VersionID: "12"}, Packages: pkgs}
	if digest != "" {
		hb.Containers = []agentproto.Container{{ID: "c-" + pod, Namespace: "k8s.io", Image: digest, Started: time.Now().UTC(),
			Labels: map[string]string{agentproto.LabelPodName: pod, agentproto.LabelPodNamespace: "shop",
				agentproto.LabelPodUID: "uid-" + pod, agentproto.LabelContainer: "web"}}}
	}
	return hb
}

// The running inventory end to end through the API: a heartbeat says
// which pod runs which digest; an advisory import revokes it, the
// revocation notification names the pod and node, the running query
// names them while they run it and not after the pod runs the rollback
// target; the response policy's answers (here without a cluster: rollback
// skipped, drift alerted) are recorded, audited and notified, once.
func TestServerRunningInventoryAndResponses(t *testing.T) {
	lr := newLodashRepo(t)
	reg, repo, oldDigest, newDigest, feed := lr.reg, lr.repo, lr.oldDigest, lr.newDigest, lr.feed
	policy := filepath.Join(t.TempDir(), "responses.yaml")
	os.WriteFile(policy, []byte("default: {drift: alert, revoked: alert}\nrules:\n- namespace: shop\n  revoked: rollback\n"), 0o600)

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, _ := startServerWith(t, dir, func(cfg *Config) {
		cfg.Policy = vulnerabilitiesOnly(t)
		cfg.AdvisorySources = []string{"npm=" + feed}
		cfg.ResponsePolicy = policy
	})
	viewer, operator := roleTokens(c, admin)
	waitScan(t, c, operator.Token, reg.Ref("shop/web:1"))
	waitScan(t, c, operator.Token, reg.Ref("shop/web:2"))
	for _, d := range []string{oldDigest, newDigest} {
		c.json("POST", "/api/v1/images/"+d+"/certification", admin.Token, map[string]string{"status": "certified"}, http.StatusOK, nil)
	}
	received := make(chan notify.Event, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev notify.Event
		json.Unmarshal(body, &ev)
		received <- ev
	}))
	defer hook.Close()
	c.json("POST", "/api/v1/webhooks", admin.Token, map[string]any{"name": "sec", "url": hook.URL, "kind": "generic",
		"secret": "a-webhook-secret-of-some-length", "events": []string{notify.EventRevoked, notify.EventResponse}}, http.StatusCreated, nil)

	// Only an operator token may report; the viewer may read.
	hb := heartbeat("node-1", newDigest, "web-1", agentproto.Package{Type: "deb", Name: "libc6", Version: "2.36-9+deb12u4"})
	c.json("POST", agentproto.HeartbeatPath, viewer.Token, hb, http.StatusForbidden, nil)
	c.json("POST", agentproto.HeartbeatPath, operator.Token, hb, http.StatusOK, nil)
	// A token bound to another node cannot report for this one.
	var node2 api.TokenCreated
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": api.NodeTokenPrefix + "node-2", "role": store.RoleOperator}, http.StatusCreated, &node2)
	c.json("POST", agentproto.HeartbeatPath, node2.Token, hb, http.StatusForbidden, nil)
	c.json("POST", agentproto.EventsPath, node2.Token, agentproto.Batch{Node: "node-1", Spool: "x", Events: []agentproto.Event{{Seq: 1,
		Time: time.Now(), Verdict: agentproto.VerdictRefused, Container: "c-web-1"}}}, http.StatusForbidden, nil)
	c.json("POST", agentproto.HeartbeatPath, node2.Token, heartbeat("node-2", "", ""), http.StatusOK, nil)
	var ws struct {
		Workloads []fleet.Workload `json:"workloads"`
		Total     int              `json:"total"`
	}
	waitFor(t, "the workload described", func() bool {
		c.json("GET", "/api/v1/runtime/workloads?namespace=shop", viewer.Token, nil, http.StatusOK, &ws)
		return ws.Total == 1 && ws.Workloads[0].Certification == store.Certified
	})
	if w := ws.Workloads[0]; w.Pod != "web-1" || w.Node != "node-1" || w.Repository != repo || w.Image != newDigest {
		t.Errorf("workload: %+v", w)
	}
	var nodes struct{ Nodes []fleet.Node }
	c.json("GET", "/api/v1/runtime/nodes?region=eu-west&state=enforcing+%28fanotify%29", viewer.Token, nil, http.StatusOK, &nodes)
	if len(nodes.Nodes) != 2 {
		t.Errorf("nodes of eu-west: %+v", nodes.Nodes)
	}
	c.json("GET", "/api/v1/runtime/nodes?region=eu-west", viewer.Token, nil, http.StatusOK, &nodes)
	nodes.Nodes = nodes.Nodes[:1]
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].Kernel != "6.1.0-test" || nodes.Nodes[0].Region != "eu-west" || nodes.Nodes[0].Packages != 1 {
		t.Errorf("nodes: %+v", nodes.Nodes)
	}
	const cve = "CVE-2021-23337"
	var exp fleet.Exposure
	c.json("GET", "/api/v1/vulnerabilities/"+cve+"/running", viewer.Token, nil, http.StatusOK, &exp)
	if len(exp.Workloads) != 0 {
		t.Errorf("running %s before the advisory: %+v", cve, exp)
	}

	// The advisory arrives: the running digest is revoked.
	lr.advise(t)
	c.json("POST", "/api/v1/advisories/import", admin.Token, map[string]any{"sources": []string{"npm"}}, http.StatusOK, nil)
	waitFor(t, "the running query to name the pod", func() bool {
		c.json("GET", "/api/v1/vulnerabilities/"+cve+"/running", viewer.Token, nil, http.StatusOK, &exp)
		return len(exp.Workloads) == 1 && exp.Workloads[0].Certification == store.Revoked
	})
	if exp.Workloads[0].Pod != "web-1" || strings.Join(exp.Nodes, ",") != "node-1" || strings.Join(exp.Digests, ",") != newDigest {
		t.Errorf("running %s: %+v", cve, exp)
	}
	var sawRevocation, sawResponse bool
	for !sawRevocation || !sawResponse {
		select {
		case ev := <-received:
			switch ev.Type {
			case notify.EventRevoked:
				var rv notify.Revocation
				json.Unmarshal(ev.Data, &rv)
				if len(rv.Running) != 1 || rv.Running[0].Pod != "web-1" || rv.Running[0].Node != "node-1" || rv.RollbackTarget != oldDigest {
					t.Errorf("revocation names %+v (target %s), want pod web-1 on node-1", rv.Running, rv.RollbackTarget)
				}
				sawRevocation = true
			case notify.EventResponse:
				var r notify.Response
				json.Unmarshal(ev.Data, &r)
				if r.Trigger != respond.TriggerRevoked || r.Action != respond.Rollback || r.State != store.ResponseSkipped ||
					!strings.Contains(r.Detail, "no Kubernetes API configured") {
					t.Errorf("response notification: %+v", r)
				}
				sawResponse = true
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("notifications: revocation %v, response %v within 10 s", sawRevocation, sawResponse)
		}
	}

	// Drift in the pod: stored, answered (alert), once, however often the
	// batch is sent.
	batch := agentproto.Batch{Node: "node-1", Spool: "s1", Events: []agentproto.Event{{Seq: 1, Time: time.Now().UTC(),
		Verdict: agentproto.VerdictRefused, Reason: "not in image", PID: 42, Path: "/tmp/x", Container: "c-web-1",
		Namespace: "k8s.io", Image: newDigest}}}
	c.json("POST", agentproto.EventsPath, operator.Token, batch, http.StatusOK, nil)
	c.json("POST", agentproto.EventsPath, operator.Token, batch, http.StatusOK, nil)
	var rs struct{ Responses []store.Response }
	waitFor(t, "the drift response", func() bool {
		c.json("GET", "/api/v1/runtime/responses", viewer.Token, nil, http.StatusOK, &rs)
		return len(rs.Responses) == 2
	})
	if r := rs.Responses[0]; r.Trigger != respond.TriggerDrift || r.Action != respond.Alert || r.State != store.ResponseDone || r.Pod != "web-1" {
		t.Errorf("drift response: %+v", r)
	}
	c.json("POST", agentproto.EventsPath, operator.Token, agentproto.Batch{Node: "node-1", Spool: "s1",
		Events: []agentproto.Event{{Seq: 2, Time: time.Now().UTC(), Verdict: agentproto.VerdictRefused, Path: "/tmp/y",
			Container: "c-web-1", Image: newDigest}}}, http.StatusOK, nil)
	time.Sleep(300 * time.Millisecond)
	c.json("GET", "/api/v1/runtime/responses", viewer.Token, nil, http.StatusOK, &rs)
	if len(rs.Responses) != 2 {
		t.Errorf("a second drift in the same pod answered again: %+v", rs.Responses)
	}

	// The application is marked end of life: its images are no longer
	// scanned, and its running workloads are violations.
	c.json("POST", "/api/v1/applications", admin.Token, map[string]any{"name": "shop", "lifecycle": store.LifecycleEndOfLife,
		"repositories": []string{repo}}, http.StatusCreated, nil)
	waitFor(t, "the end-of-life workload reported", func() bool {
		c.json("GET", "/api/v1/runtime/workloads?endOfLife=true", viewer.Token, nil, http.StatusOK, &ws)
		return ws.Total == 1 && ws.Workloads[0].Application == "shop" && ws.Workloads[0].EndOfLife
	})
	c.json("GET", "/api/v1/runtime/workloads?endOfLife=maybe", viewer.Token, nil, http.StatusBadRequest, nil)

	// The pod now runs the rollback target: the query no longer names it.
	c.json("POST", agentproto.HeartbeatPath, operator.Token, heartbeat("node-1", oldDigest, "web-2"), http.StatusOK, nil)
	waitFor(t, "the running query to drop the pod", func() bool {
		c.json("GET", "/api/v1/vulnerabilities/"+cve+"/running", viewer.Token, nil, http.StatusOK, &exp)
		return len(exp.Workloads) == 0 && exp.Pending == 0
	})
}
