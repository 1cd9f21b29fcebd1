package secretfile_test

import (
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/secretfile"
)

// TestCheckClosesTheRoot: a volume root on a tmpfs that other users of
// the host can enter (a tmpfs mounted without mode= is 1777) is closed to
// them by Check (0700), so the 0444 secret files inside are readable only
// through each container's bind mount, not by any local user.
func TestCheckClosesTheRoot(t *testing.T) {
	if !isTmpfs("/dev/shm") {
		t.Skip("/dev/shm is not a tmpfs here")
	}
	root, err := os.MkdirTemp("/dev/shm", "bwsecrets")
	if err != nil {
		t.Skipf("no directory on /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o1777); err != nil {
		t.Fatal(err)
	}
	v := &secretfile.Volumes{Root: root}
	if err := v.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != 0o700 {
		t.Fatalf("root mode after Check: %v, want 0700", got)
	}
}
