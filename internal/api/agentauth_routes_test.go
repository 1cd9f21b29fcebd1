package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/trust"
)

// TestAgentTokenEveryRouteOwnNode: node-a's agent's projected token,
// reviewed by a real kube-apiserver, is refused (403, bound to node-a) on
// every agent route that names a node when it names node-b, whether the
// node is in the body or the query: heartbeat, events, host inventory,
// secrets, flows, X.509 and JWT identities, instance registration and
// allowlists. The node is always the principal's (the token's pod's),
// never the request's. The routes that name no node (the identity
// changes feed, an instance challenge) answer it (see docs/server.md).
func TestAgentTokenEveryRouteOwnNode(t *testing.T) {
	f := newTEEAPI(t, trust.TEEPolicy{}, instance.Policy{})
	c := newAgentCluster(t)
	f.h.UseAgentAuth(c.reviewer(t, c.kc, time.Minute))
	tok := c.token(t, "bulwark-agent", "agent-a", "bulwark")
	_, csr := newCSR(t)
	at := time.Now().UTC()
	w := agentproto.Workload{Container: "c1", Image: certifiedDigest, Namespace: "prod"}
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"POST", agentproto.HeartbeatPath, heartbeat("node-b")},
		{"POST", agentproto.EventsPath, agentproto.Batch{Node: "node-b", Spool: "abc", Events: []agentproto.Event{{Seq: 1, Time: at,
			Verdict: agentproto.VerdictRefused, Reason: "not-in-image", Path: "/tmp/x", Digest: "sha256:11", Container: "c1", Image: "sha256:aa"}}}},
		{"POST", "/api/v1/agent/host-inventory", agentproto.HostInventory{Node: "node-b", Generated: at, Kernel: "6.18.0"}},
		{"POST", "/api/v1/agent/secrets", agentproto.SecretsRequest{Node: "node-b", Container: "c1", Names: []string{"db/password"}}},
		{"POST", "/api/v1/governance/flows", agentproto.FlowBatch{Node: "node-b"}},
		{"POST", agentproto.IdentityX509Path, agentproto.X509Request{Node: "node-b", CSR: csr, Workload: w}},
		{"POST", agentproto.IdentityJWTPath, agentproto.JWTRequest{Node: "node-b", Audiences: []string{"db"}, Workload: w}},
		{"POST", "/api/v1/instances", instance.Registration{ID: "i-1", Workload: "pay", Node: "node-b", Image: certifiedDigest}},
		{"GET", "/api/v1/agent/allowlists/" + certifiedDigest + "?node=node-b", nil},
	} {
		code, body := f.call(r.method, r.path, tok, r.body)
		if code != http.StatusForbidden || !strings.Contains(string(body), `bound to node \"node-a\"`) {
			t.Errorf("%s %s for node-b: %d %s, want 403 bound to node-a", r.method, r.path, code, body)
		}
	}
	if code, body := f.call("POST", agentproto.HeartbeatPath, tok, heartbeat("node-a")); code != http.StatusOK {
		t.Errorf("its own heartbeat: %d %s", code, body)
	}
	for _, path := range []string{"/api/v1/identity/changes?wait=0", "/api/v1/instances/i-1/challenge"} {
		method := "GET"
		if strings.HasSuffix(path, "challenge") {
			method = "POST"
		}
		if code, body := f.call(method, path, tok, nil); code/100 != 2 {
			t.Errorf("%s %s (no node named): %d %s", method, path, code, body)
		}
	}
	// The Authorization header: the scheme's case and the spaces around the
	// token change nothing; a tab for the space, a bwk_ prefix on the JWT
	// (an API token lookup) or a JWT with a byte changed are 401.
	for header, want := range map[string]int{
		"bearer   " + tok + "  ": http.StatusOK,
		"BEARER " + tok:          http.StatusOK,
		"Bearer\t" + tok:         http.StatusUnauthorized,
		"Bearer bwk_" + tok:      http.StatusUnauthorized,
		"Bearer " + tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tok, "AA")]: http.StatusUnauthorized,
	} {
		req := httptest.NewRequest("POST", agentproto.HeartbeatPath, bytes.NewReader(mustJSON(t, heartbeat("node-a"))))
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %.20q...: %d %s, want %d", header, rec.Code, rec.Body, want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
