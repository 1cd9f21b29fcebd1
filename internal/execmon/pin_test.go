package execmon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestGatePinned: the map of held processes is pinned in bpffs (mounted
// at /sys/fs/bpf first when nothing is), in a directory of root's, 0700.
// A child the gate stopped under one Monitor, closed without a verdict
// (an agent that died), stays stopped, and the next Monitor pinned in the
// same directory lists it with its start time (/proc/PID/stat's, in
// ticks); a child stopped by a plain SIGSTOP is not listed. Continue from
// the second Monitor runs it and forgets it. Unpinned, Pinned says why.
func TestGatePinned(t *testing.T) {
	if os.Geteuid() != 0 {
		kerneltest.Skip(t, "needs root (BPF)")
	}
	dir := filepath.Join(bpffsRoot, "bulwark-test-"+strconv.Itoa(os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	m1, err := StartWith(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	if err := m1.Pinned(); err != nil {
		t.Fatalf("pinning: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil || st.Mode&0o777 != 0o700 || st.Uid != 0 {
		t.Fatalf("the pin directory: %v, mode %o uid %d; want root's, 0700", err, st.Mode&0o777, st.Uid)
	}
	go func() { // the ring buffer is read (and dropped): nothing judges
		for {
			if _, err := m1.Read(); err != nil {
				return
			}
		}
	}()
	cgfd := gateTestCgroup(t, m1)
	out := t.TempDir()
	start := func(name string, gated bool) *exec.Cmd {
		cmd := exec.Command("/bin/sh", "-c", "echo ran > "+filepath.Join(out, name))
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		if gated {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cgfd.Fd())
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	held := start("held", true)
	waitStopped(t, held.Process.Pid)
	m1.Gate(false, 0)
	job := start("job", false) // the gate is off: only the SIGSTOP below stops it
	time.Sleep(50 * time.Millisecond)
	job.Process.Signal(syscall.SIGSTOP)
	if err := m1.Unpin(); err != nil { // a clean stop that left one held
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, heldPidsPin)); err != nil {
		t.Fatalf("unpinned while holding a process: %v; want the list kept for the successor", err)
	}
	m1.Close() // no verdict: the agent died

	time.Sleep(100 * time.Millisecond)
	if s := procState(t, held.Process.Pid); s != "T" {
		t.Fatalf("the held child after its Monitor closed: state %q, want T", s)
	}
	m2, err := StartWith(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	hs, err := m2.HeldProcs()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(hs, func(h HeldProc) bool { return h.PID == uint32(held.Process.Pid) })
	if i < 0 {
		t.Fatalf("the next Monitor's held processes %+v: want pid %d", hs, held.Process.Pid)
	}
	if got, want := hs[i].Born/1e7, startTicks(t, held.Process.Pid); got != want {
		t.Fatalf("start time %d ticks, want /proc's %d", got, want)
	}
	if slices.ContainsFunc(hs, func(h HeldProc) bool { return h.PID == uint32(job.Process.Pid) }) {
		t.Fatalf("a child stopped by SIGSTOP is listed held: %+v", hs)
	}
	if err := m2.Continue(uint32(held.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if err := held.Wait(); err != nil {
		t.Fatalf("the held child continued: %v", err)
	}
	if hs, _ := m2.HeldProcs(); slices.ContainsFunc(hs, func(h HeldProc) bool { return h.PID == uint32(held.Process.Pid) }) {
		t.Fatalf("continued, still listed: %+v", hs)
	}
	if err := m2.Unpin(); err != nil { // holding nothing: gone, and its directory
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unpinned holding nothing, %s: %v; want it removed", dir, err)
	}

	m3, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close()
	if m3.Pinned() == nil {
		t.Fatal("unpinned: Pinned says pinned")
	}
}

// startTicks is /proc/PID/stat's starttime (field 22, clock ticks).
func startTicks(t *testing.T, pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGatePinnedOtherLayout: a pinned map of another layout (an agent of
// another version) is replaced, and the Monitor says so; a pin directory
// of someone else's is refused (not pinned, the sensor still starts).
func TestGatePinnedOtherLayout(t *testing.T) {
	if os.Geteuid() != 0 {
		kerneltest.Skip(t, "needs root (BPF)")
	}
	dir := filepath.Join(bpffsRoot, "bulwark-test-other-"+strconv.Itoa(os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := bpffs(dir); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 4, ValueSize: 1, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(filepath.Join(dir, heldPidsPin)); err != nil {
		t.Fatal(err)
	}
	old.Close()
	m, err := StartWith(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Pinned() != nil || !strings.Contains(m.PinNote(), "another layout") {
		t.Fatalf("pinned %v, note %q; want pinned anew, the old one named replaced", m.Pinned(), m.PinNote())
	}
	p, err := ebpf.LoadPinnedMap(filepath.Join(dir, heldPidsPin), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.ValueSize() != 8 {
		t.Fatalf("the pin's value size %d, want 8", p.ValueSize())
	}

	theirs := filepath.Join(bpffsRoot, "bulwark-test-theirs-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(theirs) })
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	n, err := StartWith(Options{PinDir: theirs})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Pinned(); err == nil || !strings.Contains(err.Error(), "not a directory of root's") {
		t.Fatalf("a pin directory of uid 65534's: pinned %v, want refused", err)
	}
}

// TestGatePinnedShared: two Monitors pinned in one directory share the
// list (two agents of one scope, a rolling update). The first one's clean
// stop, holding nothing, must not unpin the list the second still uses:
// before, it did, and what the second then held and left at its death
// was in a list no successor found (stopped for good).
func TestGatePinnedShared(t *testing.T) {
	if os.Geteuid() != 0 {
		kerneltest.Skip(t, "needs root (BPF)")
	}
	dir := filepath.Join(bpffsRoot, "bulwark-test-shared-"+strconv.Itoa(os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	m1, err := StartWith(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	m2, err := StartWith(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m1.Pinned() != nil || m2.Pinned() != nil {
		t.Fatalf("pinned: %v, %v", m1.Pinned(), m2.Pinned())
	}
	go func() {
		for {
			if _, err := m2.Read(); err != nil {
				return
			}
		}
	}()
	if err := m1.Unpin(); err != nil { // the old agent's clean stop, holding nothing
		t.Fatal(err)
	}
	m1.Close()
	if _, err := os.Stat(filepath.Join(dir, heldPidsPin)); err != nil {
		t.Fatalf("the list another Monitor uses was unpinned: %v", err)
	}
	cgfd := gateTestCgroup(t, m2)
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, UseCgroupFD: true, CgroupFD: int(cgfd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitStopped(t, cmd.Process.Pid)
	m2.Gate(false, 0)
	if err := m2.Unpin(); err != nil { // holding one: kept
		t.Fatal(err)
	}
	m2.Close() // the second agent dies
	m3, err := StartWith(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close()
	hs, err := m3.HeldProcs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(hs, func(h HeldProc) bool { return h.PID == uint32(cmd.Process.Pid) }) {
		t.Fatalf("the successor's list %+v lacks the second Monitor's held pid %d", hs, cmd.Process.Pid)
	}
	if err := m3.Continue(uint32(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
}

// gateTestCgroup makes the test's cgroup, limits m's gate to it and turns
// the gate on; the cgroup's directory is returned open (CgroupFD).
func gateTestCgroup(t *testing.T, m *Monitor) *os.File {
	t.Helper()
	dir, cg := testCgroup(t, "")
	cgfd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgfd.Close() })
	if err := m.GateUnder(cg); err != nil {
		t.Fatal(err)
	}
	if err := m.Gate(true, 0); err != nil {
		t.Fatal(err)
	}
	return cgfd
}

// waitStopped waits until the gate has stopped pid.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); procState(t, pid) != "T"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the gated child was never stopped")
		}
	}
}
