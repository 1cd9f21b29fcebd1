package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/audit/audittest"
	"github.com/bulwark-sec/bulwark/internal/seal"
)

// logOf is a SQLite audit log with n entries.
func logOf(t *testing.T, n int) *sql.DB { return fill(t, audittest.SQLite(t), n) }

// fill appends n entries to db.
func fill(t *testing.T, db *sql.DB, n int) *sql.DB {
	t.Helper()
	for i := range n {
		if _, err := audit.Append(context.Background(), db, audit.Entry{Actor: "token:1 (ci)", Action: "certification.set", Object: fmt.Sprintf("sha256:%03d", i+1),
			After: fmt.Appendf(nil, `{"status":"certified","n":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// checkpoint signs the log's entry seq as the server's writer does.
func checkpoint(t *testing.T, db *sql.DB, key ed25519.PrivateKey) audit.Checkpoint {
	t.Helper()
	seq, sum, err := audit.Head(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return audit.SignCheckpoint(key, seq, sum, time.Now())
}

func anchorOf(t *testing.T, db *sql.DB) *audit.Anchor {
	t.Helper()
	seq, sum, err := audit.Head(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return &audit.Anchor{Seq: seq, Hash: sum}
}

// The three attacks of issue 10: each passes the plain chain and a
// recomputed (or deleted) anchor, and fails against the signed
// checkpoints.
func TestCheckpointsDetectRewrites(t *testing.T) {
	audit.EachBackend(t, testCheckpointsDetectRewrites)
}

func testCheckpointsDetectRewrites(t *testing.T, open func(t *testing.T) *sql.DB) {
	ctx := context.Background()
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name    string
		attack  func(db *sql.DB) *audit.Anchor // the anchor the attacker leaves
		seq     int64
		problem string
	}{
		{"edit a row, recompute chain and anchor", func(db *sql.DB) *audit.Anchor {
			audittest.Rewrite(t, db, func(e *audit.Entry) bool {
				if e.Object == "sha256:003" {
					e.After = []byte(`{"status":"revoked"}`)
				}
				return true
			})
			return anchorOf(t, db)
		}, 5, audit.Rewritten},
		{"delete a row and renumber, recompute chain and anchor", func(db *sql.DB) *audit.Anchor {
			audittest.Rewrite(t, db, func(e *audit.Entry) bool { return e.Object != "sha256:004" })
			return anchorOf(t, db)
		}, 5, audit.Rewritten},
		{"truncate the tail, delete the anchor", func(db *sql.DB) *audit.Anchor {
			if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > 7`); err != nil {
				t.Fatal(err)
			}
			return nil
		}, 8, audit.Truncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := fill(t, open(t), 5)
			cps := []audit.Checkpoint{checkpoint(t, db, key)}
			for range 5 {
				if _, err := audit.Append(ctx, db, audit.Entry{Actor: "system:scan", Action: "certification.grant", Object: "sha256:later"}); err != nil {
					t.Fatal(err)
				}
			}
			cps = append(cps, checkpoint(t, db, key))
			anchor := tc.attack(db)

			// What `audit verify` checked before: the chain and the anchor.
			old := audit.Anchor{}
			if anchor != nil {
				old = *anchor
			}
			if rep, err := audit.VerifyAnchored(ctx, db, old); err != nil || !rep.OK {
				t.Fatalf("the attack does not pass the chain and the anchor (%+v, %v): it tests nothing", rep, err)
			}
			rep, err := audit.VerifyEvidence(ctx, db, audit.Evidence{Anchor: anchor, Checkpoints: cps, PublicKey: pub})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.BrokenSeq != tc.seq || rep.Problem != tc.problem {
				t.Errorf("VerifyEvidence = %+v, want %s at %d", rep, tc.problem, tc.seq)
			}
			t.Log(rep.Reason)
		})
	}
}

func TestVerifyEvidence(t *testing.T) {
	ctx := context.Background()
	key, other := newKey(t), newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	db := logOf(t, 4)
	cp := checkpoint(t, db, key)
	anchor := anchorOf(t, db)

	forgedSeq := cp
	forgedSeq.Seq = 3
	tests := []struct {
		name    string
		ev      audit.Evidence
		seq     int64
		problem string // "" when OK
	}{
		{"anchor and checkpoint", audit.Evidence{Anchor: anchor, Checkpoints: []audit.Checkpoint{cp}, PublicKey: pub}, 0, ""},
		{"no anchor", audit.Evidence{Checkpoints: []audit.Checkpoint{cp}, PublicKey: pub}, 5, audit.Unanchored},
		{"no anchor, waived", audit.Evidence{Checkpoints: []audit.Checkpoint{cp}, PublicKey: pub, AllowMissingAnchor: true}, 0, ""},
		{"no checkpoint", audit.Evidence{Anchor: anchor}, 1, audit.Unsigned},
		{"no checkpoint, waived", audit.Evidence{Anchor: anchor, AllowMissingCheckpoint: true}, 0, ""},
		{"another key", audit.Evidence{Anchor: anchor, Checkpoints: []audit.Checkpoint{checkpoint(t, db, other)}, PublicKey: pub}, 4, audit.Forged},
		{"seq changed after signing", audit.Evidence{Anchor: anchor, Checkpoints: []audit.Checkpoint{cp, forgedSeq}, PublicKey: pub}, 3, audit.Forged},
		{"a checkpoint beyond the log", audit.Evidence{Anchor: anchor, Checkpoints: []audit.Checkpoint{audit.SignCheckpoint(key, 9, cp.Hash, time.Now())}, PublicKey: pub}, 5, audit.Truncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := audit.VerifyEvidence(ctx, db, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if !rep.OK {
					t.Errorf("VerifyEvidence = %+v, want OK", rep)
				}
				return
			}
			if rep.OK || rep.BrokenSeq != tc.seq || rep.Problem != tc.problem {
				t.Errorf("VerifyEvidence = %+v, want %s at %d", rep, tc.problem, tc.seq)
			}
		})
	}
	rep, err := audit.VerifyEvidence(ctx, db, audit.Evidence{Anchor: anchor, Checkpoints: []audit.Checkpoint{cp}, PublicKey: pub})
	if err != nil || rep.Checkpoint == nil || rep.Checkpoint.Seq != 4 || !rep.Anchored {
		t.Errorf("VerifyEvidence = %+v, %v; want checkpoint 4, anchored", rep, err)
	}
	if _, err := audit.VerifyEvidence(ctx, db, audit.Evidence{Checkpoints: []audit.Checkpoint{cp}}); err == nil {
		t.Error("checkpoints without a public key: no error")
	}

	// An empty log vouched for by the genesis checkpoint needs no anchor.
	empty := logOf(t, 0)
	rep, err = audit.VerifyEvidence(ctx, empty, audit.Evidence{Checkpoints: []audit.Checkpoint{checkpoint(t, empty, key)}, PublicKey: pub})
	if err != nil || !rep.OK {
		t.Errorf("VerifyEvidence(empty log, genesis checkpoint) = %+v, %v", rep, err)
	}
}

func TestCheckpointLog(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "checkpoints")
	want := []audit.Checkpoint{
		audit.SignCheckpoint(key, 0, make([]byte, 32), time.Now()),
		audit.SignCheckpoint(key, 7, make([]byte, 32), time.Now()),
	}
	for _, c := range want {
		if err := audit.AppendCheckpoint(path, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := audit.ReadCheckpoints(path)
	if err != nil || len(got) != 2 || got[1].Seq != 7 || got[1].Verify(key.Public().(ed25519.PublicKey)) != nil {
		t.Fatalf("ReadCheckpoints = %+v, %v", got, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint log mode: %v %v", fi.Mode(), err)
	}
	if _, err := audit.ReadCheckpoints(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadCheckpoints(missing) = %v", err)
	}
	line, _ := os.ReadFile(path)
	first := strings.SplitN(string(line), "\n", 2)[0]
	for name, text := range map[string]string{
		"not json":      "seq 7\n",
		"unknown field": strings.Replace(first, `{"seq"`, `{"extra":1,"seq"`, 1) + "\n",
		"two objects":   first + first + "\n",
		"null":          "null\n",
		"blank line":    first + "\n\n" + first + "\n",
		"no signature":  `{"seq":1,"hash":"AAAA","time":"2026-01-01T00:00:00Z","keyId":"x"}` + "\n",
		"long line":     `{"seq":1,"keyId":"` + strings.Repeat("x", 5000) + `"}` + "\n",
	} {
		if _, err := audit.DecodeCheckpoints(strings.NewReader(text), "log"); !errors.Is(err, audit.ErrMalformedCheckpoint) {
			t.Errorf("%s: DecodeCheckpoints = %v, want ErrMalformedCheckpoint", name, err)
		}
	}
}

func TestCheckpointKey(t *testing.T) {
	dir := t.TempDir()
	sk, err := seal.New(make([]byte, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit-checkpoint.key")
	key, err := audit.CheckpointKey(path, sk)
	if err != nil {
		t.Fatal(err)
	}
	again, err := audit.CheckpointKey(path, sk)
	if err != nil || !key.Equal(again) {
		t.Fatalf("second CheckpointKey: %v (same key: %v)", err, key.Equal(again))
	}
	pub, err := audit.ReadPublicKey(audit.PublicKeyPath(path))
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("ReadPublicKey = %v, %v", pub, err)
	}
	text, _ := os.ReadFile(path)
	if strings.Contains(string(text), string(key.Seed())) || len(text) < 60 {
		t.Errorf("the key file does not look sealed: %q", text)
	}
	other, _ := seal.New(append(make([]byte, seal.KeySize-1), 1))
	if _, err := audit.CheckpointKey(path, other); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("CheckpointKey with another secret key = %v, want ErrOpen", err)
	}
	os.Chmod(path, 0o644)
	if _, err := audit.CheckpointKey(path, sk); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a group-readable key: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(audit.PublicKeyPath(path), audit.MarshalPublicKey(newKey(t).Public().(ed25519.PublicKey)), 0o644)
	if _, err := audit.CheckpointKey(path, sk); err == nil || !strings.Contains(err.Error(), "not the checkpoint key") {
		t.Errorf("a replaced public key: %v", err)
	}
}
