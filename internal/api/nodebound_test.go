package api

import (
	"net/http"
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
