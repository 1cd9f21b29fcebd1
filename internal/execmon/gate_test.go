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

// TestGate: with the gate on, a child in a pid namespace of its own is
// stopped at its exec before the new program runs (its state is T, its
// marker is not written) and its event says Stopped; SIGCONT lets it run
// to its end. A child in the host's pid namespace is never stopped; nor
// one whose cgroup is ignored or is the caller's own (self); nor any once
// the gate is off. Stopped execs of other processes of the node (other
// tests' containers) are continued at once.
func TestGate(t *testing.T) {
	m := startSensor(t)
	mine := make(chan Event, 64)
	go func() { // the node's stopped execs that are not this test's are continued
		for {
			e, err := m.Read()
			if err != nil {
				close(mine)
				return
			}
			if !e.Stopped && e.Kind != KindExec {
				continue
			}
			if e.PPID == uint32(os.Getpid()) {
				mine <- e
			} else if e.Stopped {
				m.Continue(e.PID)
			}
		}
	}()
	defer m.Gate(false, 0)
	if err := m.Gate(true, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(name string, newPidNS bool) (*exec.Cmd, Event) {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", "echo ran > "+filepath.Join(dir, name))
		if newPidNS {
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.After(10 * time.Second); ; {
			select {
			case e := <-mine:
				if e.PID == uint32(cmd.Process.Pid) && e.Kind == KindExec {
					return cmd, e
				}
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("%s: no exec event", name)
			}
		}
	}
	ran := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }

	cmd, e := run("stopped", true)
	if !e.Stopped || e.Path != "/bin/sh" || e.Checked {
		t.Fatalf("a child in a pid namespace of its own: event %+v, want stopped", e)
	}
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
	cg := e.Cgroup

	// Continued by another (a plain SIGCONT, not Continue): the guard
	// kills it, where the kernel has bpf_send_signal_task.
	cmd, e = run("guarded", true)
	if !e.Stopped {
		t.Fatalf("guarded child: %+v, want stopped", e)
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	err := cmd.Wait()
	if gerr := m.Guarded(); gerr != nil {
		t.Logf("no guard here: %v; the child continued: %v, ran %v", gerr, err, ran("guarded"))
	} else if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL || ran("guarded") {
		t.Fatalf("a held child continued by another: %v, ran %v; want killed before it ran", err, ran("guarded"))
	}

	cmd, e = run("killed", true)
	if !e.Stopped {
		t.Fatalf("second child: %+v, want stopped", e)
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	if err := cmd.Wait(); err == nil || ran("killed") {
		t.Fatalf("a stopped child killed: %v, ran %v; want killed before it ran", err, ran("killed"))
	}

	for _, c := range []struct {
		name   string
		newNS  bool
		before func() error
	}{
		{"host", false, func() error { return nil }},
		{"self", true, func() error { return m.Gate(true, cg) }},
		{"ignored", true, func() error {
			if err := m.Gate(true, 0); err != nil {
				return err
			}
			return m.Ignore(cg)
		}},
	} {
		if err := c.before(); err != nil {
			t.Fatal(err)
		}
		cmd, e := run(c.name, c.newNS)
		if err := cmd.Wait(); err != nil || e.Stopped || !ran(c.name) {
			t.Fatalf("%s: %v, event %+v, ran %v; want not stopped", c.name, err, e, ran(c.name))
		}
	}
	if !m.Ignored(cg) || m.Ignored(cg+1<<40) {
		t.Fatal("Ignored does not say what Ignore said")
	}
	s, err := m.Stats()
	if err != nil || s.Stopped < 3 || (m.Guarded() == nil && s.ContKilled < 1) {
		t.Fatalf("stats %+v, %v; want 3 stopped, 1 killed by the guard", s, err)
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
