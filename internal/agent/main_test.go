package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--mode", "enforce"},
		{"--log-level", "loud"},
		{"extra"},
		{"--no-such-flag"},
		{"--mechanism", "ebpf"},
		{"--namespace-modes", "web=enforce"},
		{"--namespace-learn", "web=-1s"},
		{"--learn", "-1s"},
		{"--learn-push"},
		{"--learn-key", "/nonexistent/key"},
	} {
		var stderr strings.Builder
		if code := Main(context.Background(), args, io.Discard, &stderr); code != ExitUsage {
			t.Errorf("Main(%q) = %d, want %d (%s)", args, code, ExitUsage, stderr.String())
		}
	}
}

// TestMainEnvAndConfig: flags not given come from $BULWARK_<FLAG> and
// then the config file, strictly: a bad value or an unknown key is a
// usage error naming it.
func TestMainEnvAndConfig(t *testing.T) {
	var stderr strings.Builder
	t.Setenv("BULWARK_MECHANISM", "ebpf")
	if code := Main(context.Background(), []string{"--mode", "off"}, io.Discard, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), `"ebpf"`) {
		t.Fatalf("a bad mechanism from the environment: %d %q", code, stderr.String())
	}
	t.Setenv("BULWARK_MECHANISM", "")
	os.Unsetenv("BULWARK_MECHANISM")
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, []byte("bulwark-agent:\n  mode: prevnet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := Main(context.Background(), []string{"--config", cfg}, io.Discard, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "prevnet") {
		t.Fatalf("a bad mode from the config file: %d %q", code, stderr.String())
	}
	if err := os.WriteFile(cfg, []byte("mdoe: prevent\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := Main(context.Background(), []string{"--config", cfg}, io.Discard, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "mdoe") {
		t.Fatalf("an unknown key in the config file: %d %q", code, stderr.String())
	}
}

// TestInventoryDir: an inventory with content digests makes the list; one
// without digests for its executables says so (the agent then reads the
// layers); no inventory is no answer.
func TestInventoryDir(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{cfg: Config{InventoryDir: dir}}
	const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	const hexB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	content := "sha256:" + strings.Repeat("c", 64)
	write := func(hex, files string) {
		doc := `{"schema":"bulwark.sbom/v1","source":{"input":"x","kind":"dir","name":"x","layers":[]},"packages":[],"files":` + files + `}`
		if err := os.WriteFile(filepath.Join(dir, hex+".json"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(hexA, `[{"path":"/bin/app","type":"file","mode":"0755","size":3,"digest":"`+content+`"}]`)
	write(hexB, `[{"path":"/bin/app","type":"file","mode":"0755","size":3}]`)

	l, err := a.fromInventory("sha256:"+hexA, allowlist.Config{})
	if err != nil || l == nil || l.Len() != 1 {
		t.Fatalf("inventory with digests: %v, %v", l, err)
	}
	d, _ := allowlist.ParseDigest(content)
	if p, ok := l.Allows(d); !ok || p != "/bin/app" {
		t.Errorf("Allows = %q, %v", p, ok)
	}
	var missing *allowlist.MissingDigestsError
	if _, err := a.fromInventory("sha256:"+hexB, allowlist.Config{}); !errors.As(err, &missing) {
		t.Errorf("inventory without digests: %v, want MissingDigestsError", err)
	}
	if l, err := a.fromInventory("sha256:"+strings.Repeat("d", 64), allowlist.Config{}); l != nil || err != nil {
		t.Errorf("no inventory: %v, %v", l, err)
	}
}

func TestInventoryDirRefusesBadDigest(t *testing.T) {
	a := &Agent{cfg: Config{InventoryDir: t.TempDir()}}
	if _, err := a.fromInventory("sha256:../../etc/passwd", allowlist.Config{}); err == nil {
		t.Error("a digest that is a path was accepted")
	}
}
