package execmon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGate: with the gate on (limited to a cgroup of the test's own, so
// other tests' processes on the node are left alone), a child in a pid
// namespace of its own in that cgroup is stopped at its exec before the
// new program runs (its state is T, its marker is not written) and its
// event says Stopped; Continue lets it run to its end. In the gate's
// cgroup a child in the host's pid namespace (a hostPID container's) is
// stopped too. Never stopped: a child outside the gate's cgroup, in the
// host's pid namespace or not, one whose cgroup is ignored or is the
// caller's own (self), any once the gate is off; and, with no scope, a
// child in the host's pid namespace. The guard (Linux 6.13): a held child
// that a process of its own pid namespace continues is killed before it
// runs, as is one a host-pid-namespace process in the gate's cgroup (a
// hostPID container's) continues; one the host outside the scope
// continues (here, this test) runs.
func TestGate(t *testing.T) {
	m := startSensor(t)
	mine := make(chan Event, 64)
	go func() {
		for {
			e, err := m.Read()
			if err != nil {
				close(mine)
				return
			}
			if e.Kind == KindExec && e.PPID == uint32(os.Getpid()) {
				mine <- e
			}
		}
	}()
	dir, cg := testCgroup(t, "")
	defer m.Gate(false, 0)
	if err := m.GateUnder(cg); err != nil {
		t.Fatal(err)
	}
	if err := m.Gate(true, 0); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub") // the gate holds the cgroups below its own
	if err := os.Mkdir(sub, 0o755); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	defer os.Remove(sub)
	var sst syscall.Stat_t
	if err := syscall.Stat(sub, &sst); err != nil {
		t.Fatal(err)
	}
	subID := sst.Ino
	cgfd, err := os.Open(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer cgfd.Close()
	out := t.TempDir()
	ran := func(name string) bool { _, err := os.Stat(filepath.Join(out, name)); return err == nil }
	// script starts sh running a script: in a new pid namespace or not,
	// in the gate's cgroup or not.
	script := func(name, script string, newPidNS, inGate bool) (*exec.Cmd, Event) {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{}
		if newPidNS {
			cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
		}
		if inGate {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cgfd.Fd())
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.After(10 * time.Second); ; {
			select {
			case e := <-mine:
				if e.PID == uint32(cmd.Process.Pid) {
					return cmd, e
				}
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("%s: no exec event", name)
			}
		}
	}
	// run starts sh writing a marker.
	run := func(name string, newPidNS, inGate bool) (*exec.Cmd, Event) {
		t.Helper()
		return script(name, "echo ran > "+filepath.Join(out, name), newPidNS, inGate)
	}
	heldIn := func(name string, newPidNS bool) (*exec.Cmd, Event) {
		t.Helper()
		cmd, e := run(name, newPidNS, true)
		if !e.Stopped || e.Path != "/bin/sh" || e.Checked {
			t.Fatalf("%s: a child in the gate's cgroup (new pid namespace %v): event %+v, want stopped", name, newPidNS, e)
		}
		return cmd, e
	}
	held := func(name string) (*exec.Cmd, Event) { t.Helper(); return heldIn(name, true) }

	cmd, e := held("stopped")
	time.Sleep(100 * time.Millisecond)
	if st := procState(t, cmd.Process.Pid); st != "T" || ran("stopped") {
		t.Fatalf("stopped child: state %q, ran %v; want T and not run", st, ran("stopped"))
	}
	if err := m.Continue(e.PID); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !ran("stopped") {
		t.Fatalf("continued child: %v, ran %v", err, ran("stopped"))
	}

	cmd, _ = held("killed")
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	if err := cmd.Wait(); err == nil || ran("killed") {
		t.Fatalf("a stopped child killed: %v, ran %v; want killed before it ran", err, ran("killed"))
	}

	cmd, _ = held("hostcont") // the host continues it: the guard lets it be
	syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	if err := cmd.Wait(); err != nil || !ran("hostcont") {
		t.Fatalf("a held child the host continued: %v, ran %v; want it run", err, ran("hostcont"))
	}

	cmd, _ = held("guarded") // a process of its own pid namespace continues it
	sib := exec.Command("nsenter", "--target", strconv.Itoa(cmd.Process.Pid), "--pid", "/bin/sh", "-c", "kill -CONT 1")
	if b, err := sib.CombinedOutput(); err != nil { // killed too, when the guard kills the namespace's init
		t.Logf("continuing from its pid namespace: %v: %s", err, b)
	}
	err = cmd.Wait()
	if gerr := m.Guarded(); gerr != nil {
		t.Logf("no guard here: %v; the child continued: %v, ran %v", gerr, err, ran("guarded"))
	} else if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL || ran("guarded") {
		t.Fatalf("a held child continued from its pid namespace: %v, ran %v; want killed before it ran", err, ran("guarded"))
	}

	cmd, e = heldIn("hostpid", false) // a hostPID container's process
	if err := m.Continue(e.PID); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !ran("hostpid") {
		t.Fatalf("a held host-pid-namespace child continued: %v, ran %v", err, ran("hostpid"))
	}

	// A hostPID container's process continues a held one: its own exec
	// (sh) is held first and continued by this test, then its kill runs.
	cmd, _ = held("hostguarded")
	sender, se := script("hostsender", "kill -CONT "+strconv.Itoa(cmd.Process.Pid), false, true)
	if !se.Stopped {
		t.Fatalf("a host-pid-namespace child in the gate's cgroup: event %+v, want stopped", se)
	}
	if err := m.Continue(se.PID); err != nil {
		t.Fatal(err)
	}
	if err := sender.Wait(); err != nil {
		t.Fatalf("the hostPID sender: %v", err)
	}
	err = cmd.Wait()
	if m.Guarded() == nil {
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL || ran("hostguarded") {
			t.Fatalf("a held child continued by a hostPID container's process: %v, ran %v; want killed before it ran", err, ran("hostguarded"))
		}
	}

	for _, c := range []struct {
		name          string
		newNS, inGate bool
		before        func() error
	}{
		{"outside", true, false, func() error { return nil }},
		{"hostoutside", false, false, func() error { return nil }},
		{"self", true, true, func() error { return m.Gate(true, subID) }},
		{"hostself", false, true, func() error { return m.Gate(true, subID) }},
		{"ignored", true, true, func() error {
			if err := m.Gate(true, 0); err != nil {
				return err
			}
			return m.Ignore(subID)
		}},
	} {
		if err := c.before(); err != nil {
			t.Fatal(err)
		}
		cmd, e := run(c.name, c.newNS, c.inGate)
		if e.Stopped {
			m.Continue(e.PID) // fail, not hang
		}
		if err := cmd.Wait(); err != nil || e.Stopped || !ran(c.name) {
			t.Fatalf("%s: %v, event %+v, ran %v; want not stopped", c.name, err, e, ran(c.name))
		}
	}
	if !m.Ignored(subID) || m.Ignored(cg) {
		t.Fatal("Ignored does not say what Ignore said")
	}
	s, err := m.Stats()
	if err != nil || s.Stopped < 7 || (m.Guarded() == nil && s.ContKilled != 2) {
		t.Fatalf("stats %+v, %v; want 7 stopped, 2 killed by the guard", s, err)
	}
}

// procState is the state letter of pid (/proc/PID/stat).
func procState(t *testing.T, pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}
