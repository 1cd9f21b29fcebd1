package fanotify

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// scratchFS mounts a tmpfs of its own (a filesystem nothing else uses) and
// puts a copy of /bin/true in it.
func scratchFS(t *testing.T) (dir, prog string) {
	t.Helper()
	if os.Geteuid() != 0 {
		kerneltest.Skip(t, "fanotify permission events need root")
	}
	dir = t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		kerneltest.Skip(t, "mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	src, err := os.ReadFile("/bin/true")
	if err != nil {
		kerneltest.Skip(t, "reading /bin/true: %v", err)
	}
	prog = filepath.Join(dir, "true")
	if err := os.WriteFile(prog, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, prog
}

func listen(t *testing.T, dir string) *Listener {
	t.Helper()
	l, err := New()
	if err != nil {
		kerneltest.Skip(t, "fanotify unavailable: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := l.MarkExec(dir); err != nil {
		t.Fatal(err)
	}
	return l
}

// serve answers every event with answer and sends the pids it saw.
func serve(l *Listener, answer func(Event) error, seen chan<- Event) {
	buf := make([]byte, 4096)
	for {
		evs, err := l.Read(buf, nil)
		if err != nil {
			return
		}
		for _, ev := range evs {
			_ = answer(ev)
			seen <- ev
			ev.Close()
		}
	}
}

func TestDenyFailsExecWithEPERM(t *testing.T) {
	dir, prog := scratchFS(t)
	l := listen(t, dir)
	seen := make(chan Event, 16)
	go serve(l, l.Deny, seen)

	err := exec.Command(prog).Run()
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("exec under deny: %v, want EPERM", err)
	}
	ev := <-seen
	if ev.Mask&unix.FAN_OPEN_EXEC_PERM == 0 {
		t.Errorf("mask %#x lacks FAN_OPEN_EXEC_PERM", ev.Mask)
	}
	// The same binary on another filesystem is not held.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatalf("exec on an unmarked filesystem: %v", err)
	}
}

func TestAllowRunsAndFileIsTheExecutedOne(t *testing.T) {
	dir, prog := scratchFS(t)
	l := listen(t, dir)
	seen := make(chan Event, 16)
	var read []byte
	go serve(l, func(ev Event) error {
		read = make([]byte, 4)
		n, _ := unix.Pread(ev.Fd, read, 0)
		read = read[:n]
		return l.Allow(ev)
	}, seen)
	if err := exec.Command(prog).Run(); err != nil {
		t.Fatalf("exec under allow: %v", err)
	}
	<-seen
	if string(read) != "\x7fELF" {
		t.Errorf("event file starts %q, want the ELF being executed", read)
	}
}

// TestListenerLossReleasesExec: a listener that read an exec's event and then
// went away (Close here; the kernel does the same when the process dies)
// leaves no exec hanging: the kernel answers allow for it. The exec comes
// from a shell started before the listener: a child forked after it would
// hold the listener's descriptor until its own exec completed, and the
// release would wait for it (a deadlock docs/runtime.md warns about).
func TestListenerLossReleasesExec(t *testing.T) {
	dir, prog := scratchFS(t)
	sh := exec.Command("/bin/sh", "-c", `read go; "$1"; echo "rc=$?"`, "sh", prog)
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sh.Stdout = &out
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	l := listen(t, dir)
	held := make(chan Event, 1)
	go func() {
		evs, err := l.Read(make([]byte, 4096), nil)
		if err == nil && len(evs) > 0 {
			held <- evs[0] // never answered
		}
	}()
	done := make(chan error, 1)
	go func() { done <- sh.Wait() }()
	io.WriteString(stdin, "go\n")
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the exec")
	}
	select {
	case err := <-done:
		t.Fatalf("exec returned (%v) while its event was unanswered", err)
	case <-time.After(200 * time.Millisecond):
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || strings.TrimSpace(out.String()) != "rc=0" {
			t.Fatalf("exec after the listener went away: %v, %q; want it to run", err, out.String())
		}
		t.Logf("held exec released %v after the listener closed", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("exec still held 10s after the listener closed")
	}
	// And the marks went with it: the next exec is not held.
	if err := exec.Command(prog).Run(); err != nil {
		t.Fatalf("exec after close: %v", err)
	}
}

func TestReadAfterClose(t *testing.T) {
	dir, _ := scratchFS(t)
	l := listen(t, dir)
	errc := make(chan error, 1)
	go func() { _, err := l.Read(make([]byte, 4096), nil); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("read after close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a waiting Read")
	}
}

// TestReadNow: ReadNow returns at once, with nothing when no exec waits,
// with the held exec when one does; after Close it says ErrClosed.
func TestReadNow(t *testing.T) {
	dir, prog := scratchFS(t)
	l := listen(t, dir)
	buf := make([]byte, 4096)
	start := time.Now()
	evs, err := l.ReadNow(buf, nil)
	if err != nil || len(evs) != 0 {
		t.Fatalf("ReadNow with nothing queued: %v, %v; want no events, no error", evs, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ReadNow with nothing queued took %v", d)
	}
	done := make(chan error, 1)
	go func() { done <- exec.Command(prog).Run() }()
	deadline := time.Now().Add(10 * time.Second)
	for len(evs) == 0 && time.Now().Before(deadline) {
		if evs, err = l.ReadNow(buf, evs[:0]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if len(evs) != 1 {
		t.Fatalf("ReadNow while an exec is held: %d events, want 1", len(evs))
	}
	if err := l.Allow(evs[0]); err != nil {
		t.Fatal(err)
	}
	evs[0].Close()
	if err := <-done; err != nil {
		t.Fatalf("allowed exec: %v", err)
	}
	l.Close()
	if _, err := l.ReadNow(buf, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadNow after Close: %v, want ErrClosed", err)
	}
}
