package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/pgtest"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// postSecret is POST /api/v1/secrets from any goroutine: its status, or
// 0 on a transport error.
func postSecret(base, token, name, value string) int {
	b, _ := json.Marshal(api.SecretRequest{Name: name, Data: map[string]string{"pw": value},
		Policy: secretstore.Policy{SPIFFEIDs: []string{"spiffe://bulwark.local/ns/shop/**"}}})
	req, err := http.NewRequest("POST", base+"/api/v1/secrets", bytes.NewReader(b))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// createRace posts the same new secret from n goroutines spread over the
// clients and admins' tokens (one token holds only a few requests in
// progress) and checks that exactly one gets 201, the others 409, and the
// secret is at version 1.
func createRace(t *testing.T, tokens []string, cs []*client, n int) {
	t.Helper()
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = postSecret(cs[i%len(cs)].base, tokens[i%len(tokens)], "shop/race", "v") })
	}
	wg.Wait()
	created, conflict, winner := 0, 0, 0
	for i, c := range codes {
		switch c {
		case http.StatusCreated:
			created, winner = created+1, i
		case http.StatusConflict:
			conflict++
		}
	}
	if created != 1 || conflict != n-1 {
		t.Fatalf("concurrent creates: statuses %v, want one 201 and %d 409", codes, n-1)
	}
	var info secretstore.Info
	// The replica that created it knows it at once (the others on reload).
	cs[winner%len(cs)].json("GET", "/api/v1/secrets/shop%2Frace", tokens[0], nil, http.StatusOK, &info)
	if info.Version != 1 {
		t.Fatalf("after concurrent creates the secret is at version %d, want 1", info.Version)
	}
}

// TestCreateSecretConcurrent: of concurrent POST /api/v1/secrets of one
// name on one server (SQLite), one creates it and the others get 409; none
// becomes version 2.
func TestCreateSecretConcurrent(t *testing.T) {
	dir := t.TempDir()
	var tokens []string
	for range 4 {
		tokens = append(tokens, bootstrap(t, dir).Token)
	}
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	if _, err := seal.Load("", keyFile); err != nil {
		t.Fatal(err)
	}
	c, _ := startServerWith(t, dir, func(c *Config) { c.SecretKeyFile = keyFile })
	createRace(t, tokens, []*client{c}, 16)
}

// TestCreateSecretAcrossReplicas: two replicas on one PostgreSQL; a
// create on one replica is a 409 on the other at once (its cache has not
// reloaded yet: the database decides), and concurrent creates spread over
// both give one 201.
func TestCreateSecretAcrossReplicas(t *testing.T) {
	tokens, cs := secretReplicas(t, 4)
	if code := postSecret(cs[0].base, tokens[0], "shop/db", "one"); code != http.StatusCreated {
		t.Fatalf("create on a: %d", code)
	}
	if code := postSecret(cs[1].base, tokens[0], "shop/db", "two"); code != http.StatusConflict {
		t.Fatalf("create of an existing name on b: %d, want 409", code)
	}
	createRace(t, tokens, cs, 16)
}

// secretReplicas starts two replicas ("replica-a", "replica-b") on one
// new PostgreSQL database with one secret key, watching hourly, and
// creates n admin tokens.
func secretReplicas(t *testing.T, n int) ([]string, []*client) {
	t.Helper()
	dsn := pgtest.Start(t)
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	if _, err := seal.Load("", keyFile); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var tokens []string
	for range n {
		tok, err := api.CreateToken(t.Context(), api.NewAuditor(st, ""), "test", "root", store.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok.Token)
	}
	var cs []*client
	for _, name := range []string{"replica-a", "replica-b"} {
		c, _ := startServerWith(t, t.TempDir(), func(c *Config) {
			c.Instance, c.Database, c.SecretKeyFile, c.WatchInterval = name, dsn, keyFile, time.Hour
		})
		cs = append(cs, c)
	}
	return tokens, cs
}
