package containerdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"golang.org/x/sys/unix"
)

// Start runs containerd for the test and returns a client and its address.
// Everything is stopped and removed when the test ends.
func Start(t testing.TB) (*client.Client, string) {
	t.Helper()
	return start(t, "")
}

// start runs containerd with its CRI plugin configured by cri (a TOML
// section), or disabled when cri is "".
func start(t testing.TB, cri string) (*client.Client, string) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("BULWARK_REQUIRE_CONTAINERD") == "1" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("containerd tests need root")
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		skip("containerd not installed: %v", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		skip("runc not installed: %v", err)
	}
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "bwctd")
	if err != nil {
		t.Fatal(err)
	}
	addr := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [%s"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), disabledCRI(cri), addr, addr+".ttrpc") + strings.ReplaceAll(cri, "$DIR", dir)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		UnmountUnder(dir)
		_ = os.RemoveAll(dir)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(addr); err == nil {
			c, err := client.New(addr, client.WithTimeout(5*time.Second))
			if err == nil {
				if _, err = c.Version(context.Background()); err == nil {
					t.Cleanup(func() { c.Close() })
					return c, addr
				}
				c.Close()
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd did not come up in 20s; its log:\n%s", tail(string(log), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// UnmountUnder detaches whatever is mounted under dir (what containerd,
// runc or a kubelet left), deepest first.
func UnmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			_ = unix.Unmount(f[1], unix.MNT_DETACH)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
