package bpflsm

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// TestReportedContent hashes the file an exec report names inside the
// container's root, and only when it is the identity the kernel judged:
// not a file changed since, not a host file reached through a symlink the
// container planted, not a mapping report (a name only) or a relative
// path.
func TestReportedContent(t *testing.T) {
	root, host := t.TempDir(), t.TempDir()
	prog := []byte("\x7fELF program")
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "tmp/x")
	if err := os.WriteFile(p, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	// The same path on the host, with other content, and a link the
	// container planted to it by its absolute host path.
	if err := os.WriteFile(filepath.Join(host, "x"), []byte("host"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(host, "x"), filepath.Join(root, "tmp/link")); err != nil {
		t.Fatal(err)
	}
	id, err := FileIDOf(p)
	if err != nil {
		t.Fatal(err)
	}
	cache := allowlist.NewDigestCache(8)
	ev := Event{Hook: HookExec, Path: "/tmp/x", File: id}
	d, err := ReportedContent(root, ev, cache)
	if err != nil || d != allowlist.Digest(sha256.Sum256(prog)) {
		t.Fatalf("the reported file: %v, %v", d, err)
	}
	// Through a link to the root (the agent's /proc/PID/root).
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	if d2, err := ReportedContent(link, ev, cache); err != nil || d2 != d {
		t.Fatalf("through a link to the root: %v, %v", d2, err)
	}
	for name, bad := range map[string]Event{
		"changed since":   {Hook: HookExec, Path: "/tmp/x", File: FileID{Dev: id.Dev, Ino: id.Ino, CtimeSec: id.CtimeSec + 1}},
		"another inode":   {Hook: HookExec, Path: "/tmp/x", File: FileID{Dev: id.Dev, Ino: id.Ino + 1, CtimeSec: id.CtimeSec, CtimeNsec: id.CtimeNsec}},
		"mapping report":  {Hook: HookMmap, Path: "x", File: id},
		"relative path":   {Hook: HookExec, Path: "tmp/x", File: id},
		"planted symlink": {Hook: HookExec, Path: "/tmp/link", File: id},
	} {
		if _, err := ReportedContent(root, bad, cache); err == nil {
			t.Errorf("%s: hashed", name)
		} else if name != "planted symlink" && !errors.Is(err, ErrNotReported) {
			t.Errorf("%s: %v, want ErrNotReported", name, err)
		}
	}
	// The planted link to the host's file resolves inside the root, where
	// nothing is at that path: not the host file's content, whatever the
	// identity claimed.
	hid, _ := FileIDOf(filepath.Join(host, "x"))
	if _, err := ReportedContent(root, Event{Hook: HookExec, Path: "/tmp/link", File: hid}, cache); err == nil {
		t.Fatal("a planted symlink led to a host file")
	}
}
