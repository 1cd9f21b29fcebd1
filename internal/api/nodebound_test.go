package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestNodeBoundTokenAgentRoutes: a token called node:node-1, stolen from
// node-1, cannot speak for node-2 on any agent route that names a node:
// no heartbeat, runtime events or host inventory under node-2's name
// (which would make the server act on node-2's pods), no secrets for
// node-2's containers, no flows. Each is 403 and changes nothing; the
// same requests for its own node pass the check.
func TestNodeBoundTokenAgentRoutes(t *testing.T) {
	f := newIdentityAPI(t)
	_, bound, err := f.st.CreateToken(t.Context(), NodeTokenPrefix+"node-1", store.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	digest := "sha256:" + strings.Repeat("ab", 32)
	bodies := func(node string) map[string]any {
		return map[string]any{
			agentproto.HeartbeatPath: agentproto.Heartbeat{Node: node, Mode: "detect", State: agentproto.StateDetectingOnly},
			agentproto.EventsPath: agentproto.Batch{Node: node, Spool: "abc", Events: []agentproto.Event{{Seq: 1, Time: at,
				Verdict: agentproto.VerdictRefused, Reason: "not-in-image", Path: "/tmp/x", Digest: "sha256:11", Container: "c1", Image: "sha256:aa"}}},
			"/api/v1/agent/host-inventory": agentproto.HostInventory{Node: node, Generated: at, Kernel: "6.18.0",
				Running: map[string][]string{digest: {"c1"}}},
			"/api/v1/agent/secrets":    agentproto.SecretsRequest{Node: node, Container: "c1", Names: []string{"db/password"}},
			"/api/v1/governance/flows": agentproto.FlowBatch{Node: node},
		}
	}
	for path, body := range bodies("node-2") {
		code, out := f.call("POST", path, bound, body)
		if code != http.StatusForbidden || !strings.Contains(string(out), `bound to node \"node-1\"`) {
			t.Errorf("%s for another node: %d %s", path, code, out)
		}
	}
	nodes, err := f.st.NodesPage(t.Context(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == "node-2" {
			t.Errorf("node-2 recorded from node-1's token: %+v", n)
		}
	}
	if _, ok := f.h.HostInventory("node-2"); ok {
		t.Error("node-2's host inventory taken from node-1's token")
	}
	for path, body := range bodies("node-1") {
		if code, out := f.call("POST", path, bound, body); code == http.StatusForbidden {
			t.Errorf("%s for its own node: %d %s", path, code, out)
		}
	}
}

// TestNodeBoundTokenOnlyAgentRoutes: a node-bound token is an operator
// token, and before the agent-route list it could call every viewer and
// operator route: read any image's inventory and config (which made the
// allowlist route's scoping moot), list every node's workloads, start
// scans. It now gets 403 on all of them and still reaches its agent
// routes; an operator token that is not node-bound is unchanged.
func TestNodeBoundTokenOnlyAgentRoutes(t *testing.T) {
	h, sti := newTestAPI(t)
	st := sti.(*store.Store)
	ctx := t.Context()
	digest := "sha256:" + strings.Repeat("a", 64)
	if err := st.PutImage(ctx, store.Image{Digest: digest, Repository: "r/app", Config: []byte(`{"config":{"Env":["TOKEN=s3cr3t"]}}`)}); err != nil {
		t.Fatal(err)
	}
	_, node1, _ := st.CreateToken(ctx, NodeTokenPrefix+"node-1", store.RoleOperator)
	_, operator, _ := st.CreateToken(ctx, "ci", store.RoleOperator)
	call := func(token, method, path string, body any) (int, string) {
		var rd *strings.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = strings.NewReader(string(b))
		} else {
			rd = strings.NewReader("")
		}
		req := httptest.NewRequest(method, path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/images"},
		{"GET", "/api/v1/images/" + digest},
		{"GET", "/api/v1/images/" + digest + "/findings"},
		{"GET", "/api/v1/runtime/workloads"},
		{"GET", "/api/v1/runtime/nodes"},
		{"GET", "/api/v1/certifications"},
		{"POST", "/api/v1/scans"},
	} {
		code, body := call(node1, c.method, c.path, map[string]string{"image": "reg.example/app:1"})
		if code != http.StatusForbidden || strings.Contains(body, "s3cr3t") || !strings.Contains(body, "agent routes only") {
			t.Errorf("node token, %s %s: %d %s, want 403", c.method, c.path, code, body)
		}
	}
	if code, body := call(operator, "GET", "/api/v1/images/"+digest, nil); code != http.StatusOK {
		t.Errorf("an operator token that is not node-bound: %d %s", code, body)
	}
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "detect", State: agentproto.StateDetectingOnly}
	if code, body := call(node1, "POST", agentproto.HeartbeatPath, hb); code != http.StatusOK {
		t.Errorf("node token, its own heartbeat: %d %s", code, body)
	}
	// Every agent route is a route (a typo would refuse the agent).
	patterns := map[string]bool{}
	for _, rt := range h.routes() {
		patterns[rt.pattern] = true
	}
	for p := range agentRoutes {
		if !patterns[p] {
			t.Errorf("agent route %q is no route", p)
		}
	}
}
