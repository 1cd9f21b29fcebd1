package execmon

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestGateGuardPtrace: a container's process (here one in the gate's
// cgroup, in the host's pid namespace: a hostPID container's) resumes a
// held process without a SIGCONT, by ptrace: PTRACE_ATTACH, then
// PTRACE_CONT until it runs (a tracer restarts a stopped tracee; the same
// uid and capabilities need no CAP_SYS_PTRACE), or PTRACE_SEIZE and
// PTRACE_INTERRUPT first. The guard kills it before it runs, at the
// tracer's wake. Before, the guard watched SIGCONT only and the attached
// one ran to its end unjudged.
func TestGateGuardPtrace(t *testing.T) {
	m := startSensor(t)
	if err := m.Guarded(); err != nil {
		t.Skipf("no guard here: %v", err)
	}
	go func() { // the ring buffer is read (and dropped): the test gives the verdicts
		for {
			if _, err := m.Read(); err != nil {
				return
			}
		}
	}()
	cgfd := gateTestCgroup(t, m)
	defer m.Gate(false, 0)
	out := t.TempDir()
	start := func(cmd *exec.Cmd, newPidNS bool) *exec.Cmd {
		t.Helper()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgfd.Fd())}
		if newPidNS {
			cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitStopped(t, cmd.Process.Pid)
		return cmd
	}
	for i, how := range []string{"attach", "seize"} {
		held := start(exec.Command("/bin/sh", "-c", "echo ran > "+filepath.Join(out, how)), true)
		tracer := exec.Command(os.Args[0], "-test.run=^TestPtraceResumeHelper$")
		tracer.Env = append(os.Environ(), "BULWARK_PTRACE_RESUME="+strconv.Itoa(held.Process.Pid), "BULWARK_PTRACE_HOW="+how)
		tracer.Stdout, tracer.Stderr = os.Stderr, os.Stderr
		start(tracer, false)
		if err := m.Continue(uint32(tracer.Process.Pid)); err != nil { // its own exec was held: judged fine
			t.Fatal(err)
		}
		if err := tracer.Wait(); err != nil {
			t.Logf("the tracer: %v", err)
		}
		err := held.Wait()
		_, ranErr := os.Stat(filepath.Join(out, how))
		ws, _ := held.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || ranErr == nil {
			t.Fatalf("%s: a held process resumed by a container's tracer: %v, ran %v; want killed before it ran", how, err, ranErr == nil)
		}
		if s, err := m.Stats(); err != nil || s.ContKilled != uint64(i+1) {
			t.Errorf("%s: stats %+v, %v; want %d killed by the guard", how, s, err, i+1)
		}
	}
}

// TestPtraceResumeHelper is TestGateGuardPtrace's tracer, run in the gate's
// cgroup: it attaches to the held process and restarts it until it is no
// longer stopped.
func TestPtraceResumeHelper(t *testing.T) {
	pid, err := strconv.Atoi(os.Getenv("BULWARK_PTRACE_RESUME"))
	if err != nil {
		t.Skip("a helper of TestGateGuardPtrace")
	}
	runtime.LockOSThread() // ptrace requests come from the attaching thread
	if os.Getenv("BULWARK_PTRACE_HOW") == "seize" {
		if err := unix.PtraceSeize(pid); err != nil {
			t.Fatalf("PTRACE_SEIZE %d: %v", pid, err)
		}
		unix.PtraceInterrupt(pid)
	} else if err := unix.PtraceAttach(pid); err != nil {
		t.Fatalf("PTRACE_ATTACH %d: %v", pid, err)
	}
	for range 10 {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
			return // gone, or running
		}
		if err := unix.PtraceCont(pid, 0); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
