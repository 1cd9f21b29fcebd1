package checkpoint_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/audit/audittest"
	"github.com/bulwark-sec/bulwark/internal/audit/checkpoint"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

func appendN(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	for range n {
		if _, err := audit.Append(context.Background(), db, audit.Entry{Actor: "system:scan", Action: "certification.grant", Object: "sha256:abc"}); err != nil {
			t.Fatal(err)
		}
	}
}

// receiver is a webhook receiver that keeps what verifies.
type receiver struct {
	mu     sync.Mutex
	got    []audit.Checkpoint
	fail   atomic.Bool
	secret []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.fail.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, err := notify.VerifyRequest(r.secret, req, 0)
	if err != nil || req.Header.Get(notify.HeaderEvent) != checkpoint.EventType {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	c, err := audit.DecodeCheckpoint(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, c)
	r.mu.Unlock()
}

func (r *receiver) checkpoints() []audit.Checkpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Checkpoint(nil), r.got...)
}

// The writer puts each new head to the three sinks; each sink's copy
// alone makes a rewrite of the log detectable.
func TestWriterSinks(t *testing.T) {
	ctx := t.Context()
	db := audittest.SQLite(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	logPath := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	rcv := &receiver{secret: []byte("hook secret")}
	hook := httptest.NewServer(rcv)
	defer hook.Close()
	reg := registrytest.New(t)
	repo, err := name.NewRepository(reg.Host + "/bulwark/audit")
	if err != nil {
		t.Fatal(err)
	}
	w := &checkpoint.Writer{DB: db, Key: key, Interval: time.Hour, Sinks: []checkpoint.Sink{
		checkpoint.File{Path: logPath},
		checkpoint.Webhook{URL: hook.URL, Secret: rcv.secret},
		checkpoint.OCI{Repository: repo},
	}}

	if err := w.Checkpoint(ctx); err != nil { // the genesis checkpoint
		t.Fatal(err)
	}
	appendN(t, db, 3)
	if err := w.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint(ctx); err != nil { // the head did not move: nothing written
		t.Fatal(err)
	}
	rcv.fail.Store(true)
	appendN(t, db, 2)
	if err := w.Checkpoint(ctx); err == nil {
		t.Fatal("a failing webhook: no error")
	}
	rcv.fail.Store(false)
	if err := w.Checkpoint(ctx); err != nil { // the webhook catches up; the others have seq 5
		t.Fatal(err)
	}

	fromFile, err := audit.ReadCheckpoints(logPath)
	if err != nil {
		t.Fatal(err)
	}
	fromOCI, err := checkpoint.ReadOCI(ctx, repo, audit.KeyID(pub))
	if err != nil {
		t.Fatal(err)
	}
	fromHook := rcv.checkpoints()
	seqs := func(cs []audit.Checkpoint) (out []int64) {
		for _, c := range cs {
			out = append(out, c.Seq)
		}
		return out
	}
	if got := seqs(fromFile); len(got) != 3 || got[0] != 0 || got[1] != 3 || got[2] != 5 {
		t.Errorf("file checkpoints: %v, want [0 3 5]", got)
	}
	if got := seqs(fromHook); len(got) != 3 || got[2] != 5 {
		t.Errorf("webhook checkpoints: %v, want [0 3 5]", got)
	}
	if got := seqs(fromOCI); len(got) != 1 || got[0] != 5 {
		t.Errorf("OCI checkpoints (the newest): %v, want [5]", got)
	}
	tags, err := remote.List(repo)
	if err != nil || len(tags) != 3 {
		t.Errorf("OCI tags: %v, %v; want 3", tags, err)
	}

	audittest.Rewrite(t, db, func(e *audit.Entry) bool { e.Actor = "cli:mallory"; return true })
	seq, sum, _ := audit.Head(ctx, db)
	anchor := &audit.Anchor{Seq: seq, Hash: sum}
	for name, cps := range map[string][]audit.Checkpoint{"file": fromFile, "webhook": fromHook, "oci": fromOCI} {
		rep, err := audit.VerifyEvidence(ctx, db, audit.Evidence{Anchor: anchor, Checkpoints: cps, PublicKey: pub})
		if err != nil || rep.OK || rep.Problem != audit.Rewritten {
			t.Errorf("%s: VerifyEvidence after a rewrite = %+v, %v; want rewritten", name, rep, err)
		}
	}
}

// A second writer (a restarted server) does not push a tag that exists,
// and ReadOCI refuses an artifact that is not a checkpoint.
func TestOCIKeepsTags(t *testing.T) {
	ctx := t.Context()
	db := audittest.SQLite(t)
	appendN(t, db, 1)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	reg := registrytest.New(t)
	repo, _ := name.NewRepository(reg.Host + "/audit")
	sink := checkpoint.OCI{Repository: repo}
	for range 2 {
		w := &checkpoint.Writer{DB: db, Key: key, Sinks: []checkpoint.Sink{sink}}
		if err := w.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keyID := audit.KeyID(key.Public().(ed25519.PublicKey))
	first, err := checkpoint.ReadOCI(ctx, repo, keyID)
	if err != nil || len(first) != 1 || first[0].Seq != 1 {
		t.Fatalf("ReadOCI = %+v, %v", first, err)
	}
	if none, err := checkpoint.ReadOCI(ctx, repo, "0000000000000000"); err != nil || len(none) != 0 {
		t.Errorf("ReadOCI(another key) = %+v, %v", none, err)
	}
	empty, _ := name.NewRepository(reg.Host + "/nothing")
	if none, err := checkpoint.ReadOCI(ctx, empty, keyID); err != nil || len(none) != 0 {
		t.Errorf("ReadOCI(empty repository) = %+v, %v", none, err)
	}

	// An image pushed under a checkpoint tag is not a checkpoint.
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "audit:"+checkpoint.Tag(keyID, 2), img)
	if _, err := checkpoint.ReadOCI(ctx, repo, keyID); !errors.Is(err, audit.ErrMalformedCheckpoint) {
		t.Errorf("ReadOCI of a non-checkpoint = %v, want ErrMalformedCheckpoint", err)
	}
}

// Run writes the genesis checkpoint at once and returns nil when stopped.
func TestWriterRun(t *testing.T) {
	db := audittest.SQLite(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	path := filepath.Join(t.TempDir(), "log")
	w := &checkpoint.Writer{DB: db, Key: key, Interval: 20 * time.Millisecond, Sinks: []checkpoint.Sink{checkpoint.File{Path: path}}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cps, _ := audit.ReadCheckpoints(path); len(cps) == 1 {
			appendN(t, db, 1)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no genesis checkpoint within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		if cps, _ := audit.ReadCheckpoints(path); len(cps) == 2 && cps[1].Seq == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint of entry 1 within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := (&checkpoint.Writer{DB: db, Key: key}).Run(t.Context()); err == nil {
		t.Error("Run without an interval: no error")
	}
}
