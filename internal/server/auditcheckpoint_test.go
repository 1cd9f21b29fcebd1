package server

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/audit/audittest"
	"github.com/bulwark-sec/bulwark/internal/audit/checkpoint"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// The server checkpoints the audit log at start, every interval in which
// it moved and at shutdown, to the checkpoint log, a webhook and an OCI
// repository; after a rewrite of the database each copy fails it.
func TestServerAuditCheckpoints(t *testing.T) {
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	secret := []byte("checkpoint hook secret")
	var (
		mu     sync.Mutex
		posted []audit.Checkpoint
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := notify.VerifyRequest(secret, r, 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		c, err := audit.DecodeCheckpoint(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		posted = append(posted, c)
		mu.Unlock()
		io.WriteString(w, "kept")
	}))
	defer hook.Close()
	reg := registrytest.New(t)
	repoName := reg.Host + "/bulwark/audit"

	c, stop := startServerWith(t, dir, func(cfg *Config) {
		cfg.Checkpoints = CheckpointConfig{Interval: 50 * time.Millisecond, Webhook: hook.URL, WebhookSecret: secret, Repository: repoName}
	})
	logPath := CheckpointLogPath(dir)
	newest := func() int64 {
		cps, err := audit.ReadCheckpoints(logPath)
		if err != nil || len(cps) == 0 {
			return -1
		}
		return cps[len(cps)-1].Seq
	}
	waitFor := func(seq int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for newest() != seq {
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of entry %d within 10 s (newest %d)", seq, newest())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(1) // at start: the bootstrap token
	var tok api.TokenCreated
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "ci", "role": "operator"}, http.StatusCreated, &tok)
	waitFor(2) // within an interval
	c.json("POST", "/api/v1/tokens", admin.Token, map[string]string{"name": "dash", "role": "viewer"}, http.StatusCreated, &tok)
	stop()
	if got := newest(); got != 3 { // at shutdown at the latest
		t.Fatalf("newest checkpoint after stop: entry %d, want 3", got)
	}

	pub, err := audit.ReadPublicKey(audit.PublicKeyPath(CheckpointKeyPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	fromLog, _ := audit.ReadCheckpoints(logPath)
	repo, _ := name.NewRepository(repoName)
	fromOCI, err := checkpoint.ReadOCI(t.Context(), repo, audit.KeyID(pub))
	if err != nil || len(fromOCI) != 1 || fromOCI[0].Seq != 3 {
		t.Fatalf("ReadOCI = %+v, %v; want the checkpoint of entry 3", fromOCI, err)
	}
	mu.Lock()
	fromHook := append([]audit.Checkpoint(nil), posted...)
	mu.Unlock()
	if len(fromHook) == 0 || fromHook[len(fromHook)-1].Seq != 3 {
		t.Fatalf("webhook got %+v, want the last of entry 3", fromHook)
	}

	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	anchor, err := audit.ReadAnchor(audit.AnchorPath(DBPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	for name, cps := range map[string][]audit.Checkpoint{"log": fromLog, "webhook": fromHook, "oci": fromOCI} {
		if rep, err := audit.VerifyEvidence(t.Context(), st.DB(), audit.Evidence{Anchor: &anchor, Checkpoints: cps, PublicKey: pub}); err != nil || !rep.OK || rep.Checkpoint.Seq != 3 {
			t.Errorf("%s: VerifyEvidence of the intact log = %+v, %v", name, rep, err)
		}
	}
	// The database's writer drops the second token's entry and re-chains.
	last := audittest.Rewrite(t, st.DB(), func(e *audit.Entry) bool { return e.Object != "token:2" })
	forged := audit.Anchor{Seq: last.Seq, Hash: last.Hash}
	for name, cps := range map[string][]audit.Checkpoint{"log": fromLog, "webhook": fromHook, "oci": fromOCI} {
		rep, err := audit.VerifyEvidence(t.Context(), st.DB(), audit.Evidence{Anchor: &forged, Checkpoints: cps, PublicKey: pub})
		if err != nil || rep.OK {
			t.Errorf("%s: VerifyEvidence after the rewrite = %+v, %v; want a failure", name, rep, err)
		}
	}
}

// A server whose checkpoint public key was replaced refuses to start: it
// would sign checkpoints that the pinned key does not verify.
func TestServerRefusesReplacedCheckpointKey(t *testing.T) {
	dir := t.TempDir()
	_, stop := startServer(t, dir)
	stop()
	_, other, _ := ed25519.GenerateKey(nil)
	if err := os.WriteFile(audit.PublicKeyPath(CheckpointKeyPath(dir)), audit.MarshalPublicKey(other.Public().(ed25519.PublicKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("Run with a replaced checkpoint public key: nil error")
	}
	t.Log(err)
}
