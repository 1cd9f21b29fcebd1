package server

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestSecretsAcrossReplicas: two servers on one PostgreSQL with one
// secret key; a secret written, rotated and deleted through one replica
// is released, rotated and refused by the other within its reload.
func TestSecretsAcrossReplicas(t *testing.T) {
	dsn := pgtest.Start(t)
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	if _, err := seal.Load("", keyFile); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := api.CreateToken(t.Context(), api.NewAuditor(st, ""), "test", "root", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	var cs []*client
	for _, name := range []string{"replica-a", "replica-b"} {
		c, stop := startServerWith(t, t.TempDir(), func(c *Config) {
			c.Instance, c.Database, c.SecretKeyFile, c.WatchInterval = name, dsn, keyFile, time.Hour
		})
		defer stop()
		cs = append(cs, c)
	}
	a, b := cs[0], cs[1]
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "detect", State: "detecting-only", Reason: "test", Containers: []agentproto.Container{{
		ID: "c1", Namespace: "k8s.io", Image: "sha256:" + strings.Repeat("1", 64),
		Labels: map[string]string{agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: "api"}}}}
	if code, body := b.do("POST", "/api/v1/agent/heartbeat", tok.Token, hb); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	pol := secretstore.Policy{SPIFFEIDs: []string{"spiffe://bulwark.local/ns/shop/**"}}
	if code, body := a.do("PUT", "/api/v1/secrets/shop%2Fdb", tok.Token, api.SecretRequest{Data: map[string]string{"pw": "one"}, Policy: pol}); code != 201 {
		t.Fatalf("put on a: %d %s", code, body)
	}
	fromB := func(want string) string {
		var got string
		for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			_, body := b.do("POST", "/api/v1/agent/secrets", tok.Token, agentproto.SecretsRequest{Node: "node-1", Container: "c1", Names: []string{"shop/db"}})
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
	a.do("POST", "/api/v1/secrets/shop%2Fdb/rotate", tok.Token, api.SecretValue{Data: map[string]string{"pw": "two"}})
	if got := fromB("two"); got != "two" {
		t.Fatalf("replica b after a rotation on a: %q", got)
	}
	a.do("DELETE", "/api/v1/secrets/shop%2Fdb", tok.Token, nil)
	if got := fromB("no such secret"); got != "no such secret" {
		t.Fatalf("replica b after a deletion on a: %q", got)
	}
}
