package secretstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

var payments = Policy{SPIFFEIDs: []string{"spiffe://prod.example/ns/payments/**"}}

func TestPutRotateGetList(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t, "", nil, nil)
	v1, err := s.Put(ctx, "test", "payments/db", Spec{Kind: KindKV, Classes: []string{"pii"}, Policy: payments}, kv("password", "hunter2"))
	if err != nil || v1 != 1 {
		t.Fatalf("Put = %d, %v", v1, err)
	}
	v2, err := s.Rotate(ctx, "test", "payments/db", kv("password", "correct horse"))
	if err != nil || v2 != 2 {
		t.Fatalf("Rotate = %d, %v", v2, err)
	}
	got, ver, err := s.Get(ctx, "test", "payments/db", 0)
	if err != nil || ver != 2 || got.Data["password"] != "correct horse" {
		t.Fatalf("Get current = %v %d %v", got, ver, err)
	}
	old, _, err := s.Get(ctx, "test", "payments/db", 1)
	if err != nil || old.Data["password"] != "hunter2" {
		t.Fatalf("Get v1 = %v %v", old, err)
	}
	if _, err := s.Put(ctx, "test", "tls/cert.pem", Spec{Kind: KindFile, Policy: payments}, Value{File: []byte("-----BEGIN")}); err != nil {
		t.Fatal(err)
	}
	l := s.List()
	if len(l) != 2 || l[0].Name != "payments/db" || l[0].Version != 2 || l[1].Kind != KindFile {
		t.Fatalf("List = %+v", l)
	}
	// A new Service over the same store (a restart) opens the same values.
	s2, err := New(ctx, Config{Store: st, KEK: NewFileKEK(testKey), Auditor: storeAuditor{st}, Catalogue: testClasses})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := s2.Get(ctx, "test", "payments/db", 0); err != nil || got.Data["password"] != "correct horse" {
		t.Fatalf("after restart: %v %v", got, err)
	}
	// Nothing secret in the audit log.
	for _, r := range auditLog(t, st) {
		all := string(r.Before) + string(r.After) + r.Object + r.Actor
		if strings.Contains(all, "hunter2") || strings.Contains(all, "correct horse") {
			t.Fatalf("audit entry %d holds the value: %s", r.Seq, all)
		}
	}
}

// TestRawDatabaseUnreadable reads the SQLite file itself: the values are
// nowhere in it, and a different key does not open them.
func TestRawDatabaseUnreadable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bulwark.db")
	s, st := newService(t, path, nil, nil)
	secret := "s3cr3t-" + strings.Repeat("x", 40)
	if _, err := s.Put(ctx, "test", "app/key", Spec{Kind: KindKV, Policy: payments}, kv("token", secret)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("s3cr3t")) {
			t.Fatalf("%s holds the plaintext", f)
		}
	}
	st2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	other := testKeyFrom(1)
	s2, err := New(ctx, Config{Store: st2, KEK: NewFileKEK(other), Auditor: storeAuditor{st2}, Catalogue: testClasses})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s2.Get(ctx, "test", "app/key", 0)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Get with another key = %v, want an error without the value", err)
	}
	// A version's ciphertext moved onto another secret's row does not open.
	row, err := st2.VaultVersion(ctx, "app/key", 1)
	if err != nil {
		t.Fatal(err)
	}
	row.Name = "app/other"
	if _, err := s.open(row); err == nil {
		t.Fatal("a ciphertext moved to another name opened")
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t, "", nil, nil)
	big := strings.Repeat("a", MaxValue+1)
	cases := []struct {
		name string
		spec Spec
		v    Value
		want string
	}{
		{"../etc/passwd", Spec{Kind: KindKV, Policy: payments}, kv("a", "b"), "secret name"},
		{"/abs", Spec{Kind: KindKV, Policy: payments}, kv("a", "b"), "secret name"},
		{"a/../b", Spec{Kind: KindKV, Policy: payments}, kv("a", "b"), "secret name"},
		{"a//b", Spec{Kind: KindKV, Policy: payments}, kv("a", "b"), "secret name"},
		{strings.Repeat("n", MaxName+1), Spec{Kind: KindKV, Policy: payments}, kv("a", "b"), "at most"},
		{"ok", Spec{Kind: KindKV, Policy: payments}, kv("a", big), "at most"},
		{"ok", Spec{Kind: KindFile, Policy: payments}, Value{File: []byte(big)}, "at most"},
		{"ok", Spec{Kind: "blob", Policy: payments}, kv("a", "b"), "unknown kind"},
		{"ok", Spec{Kind: KindKV, Policy: payments, Classes: []string{"pii-mars"}}, kv("a", "b"), "unknown data class"},
		{"ok", Spec{Kind: KindKV, Policy: Policy{}}, kv("a", "b"), "spiffeIDs is empty"},
		{"ok", Spec{Kind: KindKV, Policy: Policy{SPIFFEIDs: []string{"prod/*"}}}, kv("a", "b"), "spiffe://"},
		{"ok", Spec{Kind: KindKV, Policy: Policy{SPIFFEIDs: []string{"spiffe://x/[", "spiffe://x"}}}, kv("a", "b"), "syntax error"},
		{"ok", Spec{Kind: KindKV, Policy: Policy{SPIFFEIDs: []string{"spiffe://x"}, TEE: "magic"}}, kv("a", "b"), "unknown TEE"},
		{"ok", Spec{Kind: KindKV, Policy: payments}, Value{}, "kv secret has data"},
	}
	for _, c := range cases {
		_, err := s.Put(ctx, "test", c.name, c.spec, c.v)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Put(%.30q) = %v, want ErrInvalid with %q", c.name, err, c.want)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Errorf("Put(%.30q): error of %d bytes echoes the input", c.name, len(err.Error()))
		}
	}
	for _, in := range []string{`{"spiffeIDs": ["spiffe://x"], "regoin": ["eu"]}`, `{"spiffeIDs": "spiffe://x"}`, `{`, `{"spiffeIDs":["spiffe://x"]} {}`} {
		if _, err := ParsePolicy([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePolicy(%s) = %v, want ErrInvalid", in, err)
		}
	}
	if l, _ := st.VaultSecrets(ctx); len(l) != 0 {
		t.Fatalf("bad input wrote %d secrets", len(l))
	}
	if n := len(auditLog(t, st)); n != 0 {
		t.Fatalf("bad input wrote %d audit entries", n)
	}
}

// TestKillDuringRotation kills (SIGKILL) a child process that rotates a
// secret as fast as it can, then opens the database: the current version
// opens and is one the child wrote, and so does every stored version.
func TestKillDuringRotation(t *testing.T) {
	if dir := os.Getenv("BULWARK_ROTATE_CHILD"); dir != "" {
		rotateForever(t, dir)
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bulwark.db")
	s, st := newService(t, path, nil, nil)
	ctx := context.Background()
	if _, err := s.Put(ctx, "test", "db/pw", Spec{Kind: KindKV, Policy: payments}, kv("pw", "v1")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringRotation$")
		cmd.Env = append(os.Environ(), "BULWARK_ROTATE_CHILD="+dir)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it rotate a while, then kill it wherever it is.
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) && strings.Count(out.String(), "rotated") < 5*(round+1) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(round*7) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		if !strings.Contains(out.String(), "rotated") {
			t.Fatalf("the child rotated nothing: %s", out.String())
		}
		s2, st2 := newService(t, path, nil, nil)
		got, ver, err := s2.Get(ctx, "test", "db/pw", 0)
		if err != nil {
			t.Fatalf("round %d: after kill -9 the current version does not open: %v", round, err)
		}
		if got.Data["pw"] != "v"+strconv.FormatInt(ver, 10) {
			t.Fatalf("round %d: version %d holds %q", round, ver, got.Data["pw"])
		}
		for v := int64(1); v <= ver; v++ {
			if _, _, err := s2.Get(ctx, "test", "db/pw", v); err != nil {
				t.Fatalf("round %d: version %d: %v", round, v, err)
			}
		}
		t.Logf("round %d: killed at version %d", round, ver)
		st2.Close()
	}
}

func rotateForever(t *testing.T, dir string) {
	s, st := newService(t, filepath.Join(dir, "bulwark.db"), nil, nil)
	defer st.Close()
	for {
		meta, err := st.VaultSecret(context.Background(), "db/pw")
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Rotate(context.Background(), "test", "db/pw", kv("pw", "v"+strconv.FormatInt(meta.Current+1, 10)))
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("rotated " + strconv.FormatInt(v, 10) + "\n")
	}
}

// lockedBuffer is a bytes.Buffer safe to write from the child's copier
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
