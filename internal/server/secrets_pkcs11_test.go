//go:build cgo

package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/secretstore/softhsmtest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestServerWithPKCS11KEK runs bulwark server with its secrets' key on a
// real SoftHSM token: a secret written through the API is wrapped by the
// token's key, and released again after a restart that finds the key on
// the token.
func TestServerWithPKCS11KEK(t *testing.T) {
	label, pin := softhsmtest.Token(t)
	dir := t.TempDir()
	cfg := SecretsConfig{KEK: "pkcs11", PKCS11: secretstore.PKCS11Config{Module: softhsmtest.Module, TokenLabel: label, PIN: pin,
		KeyLabel: "bulwark-kek", Create: true}}
	start := func() (*client, func()) {
		return startServerWith(t, dir, func(c *Config) { c.Secrets, c.WatchInterval = cfg, time.Hour })
	}
	c, stop := start()
	st, err := store.Open(t.Context(), DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.CreateToken(t.Context(), api.NewAuditor(st, ""), "test", "root", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	pol := secretstore.Policy{SPIFFEIDs: []string{"spiffe://bulwark.local/ns/shop/**"}}
	if code, b := c.do("PUT", "/api/v1/secrets/shop%2Fdb", tok.Token, api.SecretRequest{Data: map[string]string{"pw": "in-softhsm"}, Policy: pol}); code != 201 {
		t.Fatalf("put: %d %s", code, b)
	}
	row, err := st.VaultVersion(t.Context(), "shop/db", 0)
	st.Close()
	if err != nil || row.KEK != "pkcs11:bulwark-kek" {
		t.Fatalf("stored row: %+v %v", row, err)
	}
	stop()

	cfg.PKCS11.Create = false // the key is on the token now
	c, stop = start()
	defer stop()
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "detect", State: "detecting-only", Reason: "test", Containers: []agentproto.Container{{
		ID: "c1", Namespace: "k8s.io", Image: "sha256:" + strings.Repeat("2", 64),
		Labels: map[string]string{agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: "api"}}}}
	c.do("POST", "/api/v1/agent/heartbeat", tok.Token, hb)
	var got string
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end) && got != "in-softhsm"; time.Sleep(100 * time.Millisecond) {
		_, b := c.do("POST", "/api/v1/agent/secrets", tok.Token, agentproto.SecretsRequest{Node: "node-1", Container: "c1", Names: []string{"shop/db"}})
		var resp agentproto.SecretsResponse
		json.Unmarshal(b, &resp)
		if len(resp.Secrets) == 1 {
			got = resp.Secrets[0].Data["pw"] + resp.Secrets[0].Refused
		}
	}
	if got != "in-softhsm" {
		t.Fatalf("after a restart: %q", got)
	}
}
