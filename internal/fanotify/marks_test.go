package fanotify

import (
	"errors"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestMarkExecFD: a mount mark holds execs through that one mount, not
// through another mount of the same filesystem; a filesystem mark holds
// both. Marks counts them.
func TestMarkExecFD(t *testing.T) {
	dir, prog := scratchFS(t)
	other := t.TempDir()
	if err := unix.Mount(dir, other, "", unix.MS_BIND, ""); err != nil {
		kerneltest.Skip(t, "bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(other, unix.MNT_DETACH) })
	l, err := New()
	if err != nil {
		kerneltest.Skip(t, "fanotify unavailable: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	fd, err := unix.Open(other, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := l.MarkExecFD(fd, true); err != nil {
		t.Fatal(err)
	}
	go serve(l, l.Deny, make(chan Event, 64))
	if err := exec.Command(filepath.Join(other, "true")).Run(); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("exec through the marked mount: %v, want EPERM", err)
	}
	if err := exec.Command(prog).Run(); err != nil {
		t.Fatalf("exec of the same file through another mount: %v, want it unheld", err)
	}
	if fs, mnt, err := l.Marks(); err != nil || fs != 0 || mnt != 1 {
		t.Fatalf("marks: %d filesystems, %d mounts, %v; want 0, 1", fs, mnt, err)
	}
	if err := l.MarkExecFD(fd, false); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(prog).Run(); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("exec under a filesystem mark: %v, want EPERM", err)
	}
	if fs, mnt, _ := l.Marks(); fs != 1 || mnt != 1 {
		t.Fatalf("marks: %d filesystems, %d mounts; want 1, 1", fs, mnt)
	}
	if err := l.MarkExecFD(-1, true); err == nil {
		t.Fatal("marking a closed descriptor: no error")
	}
}

// TestMountNotify: a mount attached in a watched mount namespace wakes
// WaitAny; Close ends it with ErrClosed.
func TestMountNotify(t *testing.T) {
	w := mountNotify(t)
	got := make(chan error, 4)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := w.WaitAny(buf)
			if err != nil {
				got <- err
				return
			}
			if n > 0 {
				got <- nil
			}
		}
	}()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report of the mount")
	}
	w.Close()
	for {
		select {
		case err := <-got:
			if err == nil {
				continue // more reports (other mounts of the machine)
			}
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("after close: %v, want ErrClosed", err)
			}
			return
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end WaitAny")
		}
	}
}

// mountNotify starts a NewMountNotify listener of this process's mount
// namespace, closed at the end of the test.
func mountNotify(t *testing.T) *Listener {
	t.Helper()
	if unix.Geteuid() != 0 {
		kerneltest.Skip(t, "needs root")
	}
	w, err := NewMountNotify()
	if err != nil {
		kerneltest.Skip(t, "no mount notifications (Linux 6.15): %v", err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.MarkMountNS("/proc/self/ns/mnt"); err != nil {
		t.Fatal(err)
	}
	return w
}
