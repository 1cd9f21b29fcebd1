package execmon

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestKillUnheld: in a watched cgroup with kill, an exec of a file on a
// mount the agent did not name is killed before it runs (the program's
// first act, writing a marker, never happens; the exit is SIGKILL) and
// reported Killed; the same file runs once its mount is held, runs and is
// reported Unheld when the cgroup is watched without kill, runs unflagged
// outside the cgroup, and is killed from a cgroup made below the watched
// one. Files on a held filesystem run.
func TestKillUnheld(t *testing.T) {
	m := startSensor(t)
	evs := readAll(m, KindExec)
	cgDir, cg := testCgroup(t, "")
	subDir, _ := testCgroup(t, filepath.Base(cgDir)+"/sub")

	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	sh := filepath.Join(dir, "sh")
	b, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sh, b, 0o755); err != nil {
		t.Fatal(err)
	}
	var root unix.Stat_t
	if err := unix.Stat("/bin/sh", &root); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mnt, err := MountID(fd)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Hold(cg, []uint64{root.Dev}, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Watch(cg, true); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	script := "echo > " + marker
	run := func(what, cgroup, prog string, wantKilled, wantUnheld, wantChecked bool) {
		t.Helper()
		os.Remove(marker)
		pid, err := runIn(cgroup, prog, script)
		_, statErr := os.Stat(marker)
		switch {
		case wantKilled && !errors.Is(err, errKilled):
			t.Fatalf("%s: %v, want killed", what, err)
		case wantKilled && statErr == nil:
			t.Fatalf("%s: killed, but the program ran first", what)
		case !wantKilled && (err != nil || statErr != nil):
			t.Fatalf("%s: %v (marker: %v), want it run", what, err, statErr)
		}
		e := execOf(t, evs, pid)
		if e.Killed != wantKilled || e.Unheld != wantUnheld || e.Checked != wantChecked || e.Mount == 0 {
			t.Fatalf("%s: event %+v, want killed %v unheld %v checked %v", what, e, wantKilled, wantUnheld, wantChecked)
		}
		if wantChecked && e.Cgroup != cg {
			t.Fatalf("%s: event cgroup %d, want the watched %d", what, e.Cgroup, cg)
		}
		if e.Mount != mnt && prog == sh {
			t.Fatalf("%s: event mount %d, want %d", what, e.Mount, mnt)
		}
	}
	run("the host's /bin/sh, on a held filesystem", cgDir, "/bin/sh", false, false, true)
	run("a copy on an unheld tmpfs", cgDir, sh, true, true, true)
	run("the copy from a cgroup below the watched one", subDir, sh, true, true, true)
	run("the copy outside the watched cgroup", "", sh, false, false, false)
	if err := m.Hold(cg, nil, []uint64{mnt}); err != nil {
		t.Fatal(err)
	}
	run("the copy with its mount held", cgDir, sh, false, false, true)
	if err := m.Release(cg, nil, []uint64{mnt}); err != nil {
		t.Fatal(err)
	}
	if err := m.Watch(cg, false); err != nil {
		t.Fatal(err)
	}
	run("the copy, watched without kill", cgDir, sh, false, true, true)
	if err := m.Unwatch(cg); err != nil {
		t.Fatal(err)
	}
	run("the copy, unwatched", cgDir, sh, false, false, false)
	if s, _ := m.Stats(); s.Killed < 2 {
		t.Fatalf("stats %+v, want 2 killed", s)
	}
}

var errKilled = errors.New("killed")

// runIn runs prog -c script in the cgroup v2 directory cgroup ("": this
// process's) and returns its pid and errKilled when SIGKILL ended it.
func runIn(cgroup, prog, script string) (int, error) {
	cmd := exec.Command(prog, "-c", script)
	if cgroup != "" {
		f, err := os.Open(cgroup)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	}
	err := cmd.Run()
	if cmd.Process == nil {
		return 0, err
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return cmd.Process.Pid, errKilled
	}
	return cmd.Process.Pid, err
}

// testCgroup makes a cgroup v2 directory (under name, relative to the
// cgroup v2 mount, or a fresh one) and returns it and its id.
func testCgroup(t testing.TB, name string) (string, uint64) {
	t.Helper()
	root := cgroup2Root(t)
	if name == "" {
		name = "bulwark-execmon-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 100 {
			if os.Remove(dir) == nil || errors.Is(os.Remove(dir), os.ErrNotExist) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dir, st.Ino
}

func cgroup2Root(t testing.TB) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if fs := strings.Fields(pre); ok && len(fs) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return fs[4]
		}
	}
	kerneltest.Skip(t, "no cgroup v2 mount")
	return ""
}

// startSensor starts the sensor for t (root needed), closed at its end.
func startSensor(t testing.TB) *Monitor {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("BULWARK_REQUIRE_CONTAINERD") == "1" {
			t.Fatal("needs root")
		}
		kerneltest.Skip(t, "needs root (BPF)")
	}
	m, err := Start()
	if err != nil {
		t.Fatalf("starting the sensor: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// readAll forwards the sensor's events of the kinds given, all when none
// (the machine's; the tests pick theirs by pid; a busy machine's surplus is
// dropped).
func readAll(m *Monitor, kinds ...Kind) <-chan Event {
	evs := make(chan Event, 4096)
	go func() {
		defer close(evs)
		for {
			e, err := m.Read()
			if err != nil {
				return
			}
			if len(kinds) > 0 && !slices.Contains(kinds, e.Kind) {
				continue
			}
			select {
			case evs <- e:
			default:
			}
		}
	}()
	return evs
}

// execOf waits for pid's exec event.
func execOf(t *testing.T, evs <-chan Event, pid int) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatal("the sensor stopped")
			}
			if e.PID == uint32(pid) {
				return e
			}
		case <-deadline:
			t.Fatalf("no exec event for pid %d", pid)
		}
	}
}
