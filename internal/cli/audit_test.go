package cli

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/audit/audittest"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// auditedDataDir is a data directory whose audit log holds three token
// creations, made by `bulwark server token create`.
func auditedDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	for _, name := range []string{"bootstrap", "ci", "deploy"} {
		if _, errs, code := runServerCLI(t, t.Context(), "server", "token", "create", "--data-dir", dir, "--name", name, "--role", "operator"); code != ExitOK {
			t.Fatalf("token create: %d %s", code, errs)
		}
	}
	return dir
}

// attack opens the data directory's database as its writer would and runs
// fn on it.
func attack(t *testing.T, dir string, fn func(st *store.Store)) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(dir, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fn(st)
}

func auditVerify(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	out, errs, code := runServerCLI(t, t.Context(), append([]string{"audit", "verify", "--data-dir", dir}, args...)...)
	return out + errs, code
}

// The three rewrites of issue 10 that a plain hash chain and an anchor
// beside the database let through: each must make `audit verify` exit 1.
func TestAuditVerifyDetectsRewrites(t *testing.T) {
	anchor := func(dir string) string { return audit.AnchorPath(filepath.Join(dir, "bulwark.db")) }
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, dir string, st *store.Store)
	}{
		{"edit a row, recompute the chain and the anchor", func(t *testing.T, dir string, st *store.Store) {
			last := audittest.Rewrite(t, st.DB(), func(e *audit.Entry) bool {
				if e.Object == "token:1" {
					e.Actor = "cli:mallory"
				}
				return true
			})
			if err := audit.WriteAnchor(anchor(dir), last); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete a row and renumber, recompute the chain and the anchor", func(t *testing.T, dir string, st *store.Store) {
			last := audittest.Rewrite(t, st.DB(), func(e *audit.Entry) bool { return e.Object != "token:2" })
			if err := audit.WriteAnchor(anchor(dir), last); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncate the tail and delete the anchor", func(t *testing.T, dir string, st *store.Store) {
			if _, err := st.DB().ExecContext(t.Context(), `DELETE FROM audit_log WHERE seq = 3`); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(anchor(dir)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := auditedDataDir(t)
			if out, code := auditVerify(t, dir); code != ExitOK || !strings.Contains(out, "audit log OK: 3 entries") {
				t.Fatalf("verify before the attack: %d %s", code, out)
			}
			attack(t, dir, func(st *store.Store) { tc.do(t, dir, st) })
			out, code := auditVerify(t, dir)
			if code != ExitFindings || !strings.Contains(out, "BROKEN") {
				t.Errorf("verify after the attack: exit %d, want %d (broken):\n%s", code, ExitFindings, out)
			}
			t.Log(out)
		})
	}
}

// Missing evidence fails unless waived; forged evidence fails.
func TestAuditVerifyMissingAndForgedEvidence(t *testing.T) {
	dir := auditedDataDir(t)
	anchor := audit.AnchorPath(filepath.Join(dir, "bulwark.db"))
	logPath := filepath.Join(dir, "audit-checkpoints.jsonl")
	moved := filepath.Join(t.TempDir(), "moved")
	check := func(name string, wantCode int, want string, args ...string) {
		t.Helper()
		out, code := auditVerify(t, dir, args...)
		if code != wantCode || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", name, code, wantCode, want, out)
		}
	}
	check("intact", ExitOK, "signed checkpoint: entry 3")

	os.Rename(anchor, moved)
	check("no anchor", ExitFindings, "(unanchored)")
	check("no anchor, waived", ExitOK, "no anchor file (waived)", "--allow-missing-anchor")
	os.Rename(moved, anchor)

	os.Rename(logPath, moved)
	check("no checkpoint", ExitFindings, "(unsigned)")
	check("no checkpoint, waived", ExitOK, "no signed checkpoint (waived)", "--allow-missing-checkpoint")
	os.Rename(moved, logPath)

	_, other, _ := ed25519.GenerateKey(nil)
	otherPub := filepath.Join(t.TempDir(), "other.pub")
	os.WriteFile(otherPub, audit.MarshalPublicKey(other.Public().(ed25519.PublicKey)), 0o644)
	check("another public key", ExitFindings, "(forged)", "--public-key", otherPub)
	check("no such public key", ExitError, "checkpoint public key", "--public-key", filepath.Join(dir, "none.pub"))

	f, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":9,"hash":"AA==","time":"2026-01-01T00:00:00Z","keyId":"x","signature":"AA==","note":1}` + "\n")
	f.Close()
	check("a malformed line", ExitFindings, "(forged)")
}
