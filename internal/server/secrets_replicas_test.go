package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
)

// TestSecretsAcrossReplicas: two servers on one PostgreSQL with one
// secret key; a secret written, rotated and deleted through one replica
// is released, rotated and refused by the other within its reload.
func TestSecretsAcrossReplicas(t *testing.T) {
	tokens, cs := secretReplicas(t, 1)
	tok := tokens[0]
	a, b := cs[0], cs[1]
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "detect", State: "detecting-only", Reason: "test", Containers: []agentproto.Container{{
		ID: "c1", Namespace: "k8s.io", Image: "sha256:" + strings.Repeat("1", 64),
		Labels: map[string]string{agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: "api"}}}}
	if code, body := b.do("POST", "/api/v1/agent/heartbeat", tok, hb); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	pol := secretstore.Policy{SPIFFEIDs: []string{"spiffe://bulwark.local/ns/shop/**"}}
	if code, body := a.do("PUT", "/api/v1/secrets/shop%2Fdb", tok, api.SecretRequest{Data: map[string]string{"pw": "one"}, Policy: pol}); code != 201 {
		t.Fatalf("put on a: %d %s", code, body)
	}
	fromB := func(want string) string {
		var got string
		for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			_, body := b.do("POST", "/api/v1/agent/secrets", tok, agentproto.SecretsRequest{Node: "node-1", Container: "c1", Names: []string{"shop/db"}})
			var resp agentproto.SecretsResponse
			json.Unmarshal(body, &resp)
			if len(resp.Secrets) == 1 {
				got = resp.Secrets[0].Data["pw"] + resp.Secrets[0].Refused
			}
			if got == want {
				break
			}
		}
		return got
	}
	if got := fromB("one"); got != "one" {
		t.Fatalf("replica b releases %q, want the value written on a", got)
	}
	a.do("POST", "/api/v1/secrets/shop%2Fdb/rotate", tok, api.SecretValue{Data: map[string]string{"pw": "two"}})
	if got := fromB("two"); got != "two" {
		t.Fatalf("replica b after a rotation on a: %q", got)
	}
	a.do("DELETE", "/api/v1/secrets/shop%2Fdb", tok, nil)
	if got := fromB("no such secret"); got != "no such secret" {
		t.Fatalf("replica b after a deletion on a: %q", got)
	}
}
