package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// TestAllowlistCacheTrust: the disk cache of the server's allowlists is
// used only where no one but the agent's user can write, and is never
// written through a name planted in advance. Each case was used, or
// written through, before.
func TestAllowlistCacheTrust(t *testing.T) {
	digest := "sha256:" + hexOf([32]byte{1})
	name := allowlistName(digest)
	ans := &agentproto.Allowlist{Image: digest, Entrypoint: []string{"/bin/probe"}}
	agentAt := func(dir string) *Agent {
		return &Agent{cfg: Config{AllowlistCache: dir}, log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	}

	dir := filepath.Join(t.TempDir(), "cache")
	a := agentAt(dir)
	a.keepAllowlist(digest, ans)
	if got := a.cachedAllowlist(digest); got == nil || got.Entrypoint[0] != "/bin/probe" {
		t.Fatalf("a trusted cache: %+v, want the answer kept", got)
	}
	if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the cached file: %v %v, want mode 0600", st.Mode(), err)
	}

	// A directory others may write: a local user could plant a list.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if got := a.cachedAllowlist(digest); got != nil {
		t.Error("a cache directory of mode 0777 was used")
	}
	os.Chmod(dir, 0o700)

	// A file another user owns, or others may write.
	f := filepath.Join(dir, name)
	if err := os.Chown(f, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if got := a.cachedAllowlist(digest); got != nil {
		t.Error("a cached file owned by uid 1000 was used")
	}
	os.Chown(f, 0, 0)
	os.Chmod(f, 0o666)
	if got := a.cachedAllowlist(digest); got != nil {
		t.Error("a cached file of mode 0666 was used")
	}
	os.Chmod(f, 0o600)

	// A symlink as the file, or as the directory.
	elsewhere := t.TempDir()
	agentAt(elsewhere).keepAllowlist(digest, ans)
	os.Remove(f)
	if err := os.Symlink(filepath.Join(elsewhere, name), f); err != nil {
		t.Fatal(err)
	}
	if got := a.cachedAllowlist(digest); got != nil {
		t.Error("a cached file that is a symlink was used")
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	if got := agentAt(link).cachedAllowlist(digest); got != nil {
		t.Error("a cache directory that is a symlink was used")
	}

	// A name planted where the agent used to write first: not followed.
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clean := filepath.Join(t.TempDir(), "clean")
	if err := os.Mkdir(clean, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(clean, name+".tmp")); err != nil {
		t.Fatal(err)
	}
	agentAt(clean).keepAllowlist(digest, ans)
	if err := os.Symlink(victim, filepath.Join(clean, "status.json.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(clean, "status.json"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "host file\n" {
		t.Fatalf("a planted symlink was written through: the host file holds %q", b)
	}
	if got := agentAt(clean).cachedAllowlist(digest); got == nil {
		t.Error("the answer was not kept beside the planted name")
	}
}
