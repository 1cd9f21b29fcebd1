package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// runServerCLI is run with the server and audit commands in the tree,
// whether or not root.go registers them yet.
func runServerCLI(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRootCmd(&out, &errb)
	have := map[string]bool{}
	for _, c := range root.Commands() {
		have[c.Name()] = true
	}
	g := &globalOptions{stderr: &errb, logLevel: "warn", logFormat: "text"}
	if !have["server"] {
		root.AddCommand(newServerCmd(g))
	}
	if !have["audit"] {
		root.AddCommand(newAuditCmd(g))
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return out.String(), errb.String(), ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return out.String(), errb.String() + err.Error(), ee.code
	}
	return out.String(), errb.String() + err.Error(), ExitError
}

func TestServerTokenCreateAndAuditVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := t.Context()

	out, errs, code := runServerCLI(t, ctx, "server", "token", "create", "--data-dir", dir, "--name", "bootstrap", "--role", "admin")
	if code != ExitOK {
		t.Fatalf("token create: %d %s", code, errs)
	}
	token := strings.TrimSpace(out)
	if !strings.HasPrefix(token, store.TokenPrefix) || strings.Count(out, "\n") != 1 {
		t.Fatalf("token create printed %q", out)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v %v", fi.Mode(), err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	role, _, err := st.Authenticate(ctx, token)
	st.Close()
	if err != nil || role != store.RoleAdmin {
		t.Fatalf("Authenticate(new token) = %q, %v", role, err)
	}
	if _, errs, code := runServerCLI(t, ctx, "server", "token", "create", "--data-dir", dir, "--name", "x", "--role", "root"); code != ExitError {
		t.Errorf("unknown role: exit %d %s", code, errs)
	}

	verify := func() (string, int) {
		out, errs, code := runServerCLI(t, ctx, "audit", "verify", "--data-dir", dir)
		return out + errs, code
	}
	if out, code := verify(); code != ExitOK || !strings.Contains(out, "audit log OK: 1 entry,") {
		t.Fatalf("verify: %d %s", code, out)
	}
	// A second token, then remove it from the end of the log: the anchor
	// catches the truncation.
	if _, errs, code := runServerCLI(t, ctx, "server", "token", "create", "--data-dir", dir, "--name", "ci", "--role", "operator"); code != ExitOK {
		t.Fatalf("token create: %s", errs)
	}
	exec := func(q string) {
		st, err := store.Open(ctx, filepath.Join(dir, "bulwark.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec(`DELETE FROM audit_log WHERE seq = 2`)
	if out, code := verify(); code != ExitFindings || !strings.Contains(out, "truncated") {
		t.Errorf("verify after truncation: %d %s", code, out)
	}
	// An edited entry.
	os.Remove(filepath.Join(dir, "bulwark.db.audit-anchor"))
	exec(`UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 1`)
	out, code = verify()
	if code != ExitFindings || !strings.Contains(out, "BROKEN at entry 1 (edited)") {
		t.Errorf("verify after edit: %d %s", code, out)
	}
}

func TestAuditVerifyNoDataDir(t *testing.T) {
	_, errs, code := runServerCLI(t, t.Context(), "audit", "verify", "--data-dir", filepath.Join(t.TempDir(), "none"))
	if code != ExitError || !strings.Contains(errs, "opening the audit log") {
		t.Errorf("audit verify without a database: %d %s", code, errs)
	}
}

// `bulwark server` runs until its context is cancelled (SIGTERM in main)
// and then exits 0.
func TestServerCmdStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errs string
	go func() {
		var code int
		_, errs, code = runServerCLI(t, ctx, "server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--workers", "1", "--log-level", "error")
		done <- code
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "bulwark.db")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no database after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("server exit %d: %s", code, errs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop within 5 s of cancel")
	}
}

// A mistyped role is refused naming the roles there are, before the data
// directory is made: it used to leave a fresh database behind a typo.
func TestServerTokenCreateUnknownRole(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, errs, code := runServerCLI(t, t.Context(), "server", "token", "create", "--data-dir", dir, "--name", "x", "--role", "boss")
	if code != ExitError || !strings.Contains(errs, `"boss"`) || !strings.Contains(errs, "viewer, operator or admin") {
		t.Errorf("exit %d, stderr %q: want 2 naming the role and the roles there are", code, errs)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the data directory was made for a refused role: %v", err)
	}
}

// --database takes a PostgreSQL URL only: "mysql://x" ran the server on a
// SQLite file it created at ./mysql:/x, so replicas meant to share one
// database each kept their own.
func TestServerDatabaseNotPostgres(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"server", "token", "create", "--data-dir", dir, "--name", "x", "--database", "mysql://x"},
		{"server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--database", "mysql://x"},
		{"audit", "verify", "--data-dir", dir, "--database", "/var/lib/bulwark/bulwark.db"},
		{"server", "token", "create", "--data-dir", dir, "--name", "x", "--database", "mysql://u:hunter2@db/x"},
	} {
		_, errs, code := runServerCLI(t, t.Context(), args...)
		if code != ExitError || !strings.Contains(errs, "--database") || !strings.Contains(errs, "postgres://") || strings.Contains(errs, "hunter2") {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming --database", strings.Join(args, " "), code, errs)
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) > 0 {
		t.Errorf("files made in the working directory: %v", entries)
	}
}
