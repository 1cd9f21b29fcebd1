package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"
)

// TestGateRestartJudges: an agent dies (no shutdown: its sensor detached,
// no verdict sent, as a SIGKILL or an OOM kill leaves it) while its gate
// holds, adoption slowed by 3 s, a drifted entrypoint (from a hostPath),
// a drifted server and an image entrypoint; another container, adopted,
// has its entrypoint stopped by a plain SIGSTOP (job control). All stay
// stopped (T). With no agent there is no guard: the drifted server is
// continued (by the host here, a sibling could) and serves.
// The next agent, in prevent, judges what the gate held as fresh stopped
// execs: the drifted entrypoint is killed before it ran (137, no
// ESCAPED), reported refused before-adoption/not-in-image; the image
// entrypoint is continued and serves. The SIGSTOPped one was never in the
// gate's list: it stays stopped. The server that ran meanwhile is judged
// too: killed (137), refused, "continued before its verdict". An entry written into the pinned list for
// it with another start time (its pid's former owner, long dead) is
// deleted and does not continue it either.
func TestGateRestartJudges(t *testing.T) {
	c, addr, ctx, probe, img := gateWorld(t)
	var col1 collector
	a1, stop1 := startAgent(t, addr, ModePrevent, &col1, func(c *Config) {
		c.ExecEventsDefault, c.adoptDelay = true, delay(3*time.Second)
	})
	if m := a1.procMon.Load(); m == nil || m.Pinned() != nil {
		t.Fatalf("the gate's held processes are not pinned: %v", m.Pinned())
	}
	job := startWatched(t, ctx, c, img, a1, "gaterejob")
	jobPid := int(job.task.Pid())
	if err := syscall.Kill(jobPid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(jobPid, syscall.SIGCONT) })
	evilPid, wait := startEntrypoint(t, ctx, c, img, "gatereevil", append(append([]byte{}, probe...), "drifted"...))
	drift := append(append([]byte{}, probe...), "drifted"...)
	contPid, contWait := startEntrypoint(t, ctx, c, img, "gaterecont", drift, oci.WithProcessArgs("/ctl/evil", "serve", "/ctl"))
	good := create(t, ctx, c, img, "gaterimage")
	if err := good.task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	goodPid := int(good.task.Pid())
	for _, pid := range []int{evilPid, goodPid, jobPid, contPid} {
		for deadline := time.Now().Add(5 * time.Second); procStateOf(pid) != "T"; sleepTick() {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d was never stopped", pid)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // their events read: pending
	a1.gate.dying.Store(true)
	stop1()
	time.Sleep(300 * time.Millisecond)
	for _, pid := range []int{evilPid, goodPid, jobPid} {
		if st := procStateOf(pid); st != "T" {
			t.Fatalf("after the agent died, pid %d: state %q, want still stopped", pid, st)
		}
	}
	// While no agent runs there is no guard: a held drifted server is
	// continued (here by the host; a sibling of a shared pid namespace
	// could) and runs.
	if err := syscall.Kill(contPid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); procStateOf(contPid) == "T"; sleepTick() {
		if time.Now().After(deadline) {
			t.Fatal("the continued server stays stopped")
		}
	}

	pinned, err := ebpf.LoadPinnedMap(filepath.Join(heldPinDir(a1.gateDir()), "held_pids"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	ticks, err := procStartTicks(jobPid)
	if err != nil {
		t.Fatal(err)
	}
	if err := pinned.Put(uint32(jobPid), (ticks+100)*nsPerTick); err != nil { // 1 s later: another process
		t.Fatal(err)
	}

	var col2 collector
	restart := time.Now()
	a2, _ := startAgent(t, addr, ModePrevent, &col2, withExecEvents)
	ready := time.Since(restart)
	code, escaped := wait()
	t.Logf("the next agent: ready %v after its start; the drifted entrypoint ended %v after it; the three held waited %v in all for their verdicts",
		ready.Round(time.Millisecond), time.Since(restart).Round(time.Millisecond), a2.gateStats().Waited.Round(time.Microsecond))
	if code != 128+int(syscall.SIGKILL) || escaped {
		t.Fatalf("the drifted entrypoint held at the crash: exit %d, escaped %v; want killed (137) before it ran", code, escaped)
	}
	e := col2.lastReason(0, "gatereevil", ReasonBeforeAdoption+"/"+ReasonNotInImage)
	if e == nil || e.Verdict != VerdictRefused || e.Digest == "" {
		t.Fatalf("the drifted entrypoint held at the crash: event %+v, want refused before-adoption/not-in-image", e)
	}
	t.Logf("reported path of the recovered process: %q", e.Path)
	if code, _ := contWait(); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("a held drifted server continued while no agent ran: exit %d, want killed (137) by the next agent", code)
	}
	if e := col2.lastReason(0, "gaterecont", ReasonBeforeAdoption+"/"+ReasonNotInImage); e == nil || e.Verdict != VerdictRefused ||
		!strings.Contains(e.Err, "continued before its verdict") {
		t.Fatalf("the held server continued while no agent ran: event %+v, want refused, continued before its verdict", e)
	}
	for deadline := time.Now().Add(10 * time.Second); ; sleepTick() {
		if _, err := os.Stat(good.sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the image entrypoint held at the crash never served (state %q)", procStateOf(goodPid))
		}
	}
	good.doAll(t, "run /bin/tool")
	if s := a2.gateStats(); s.Recovered != 3 || s.Killed < 2 || s.Continued < 1 {
		t.Fatalf("gate %+v, want 3 recovered, 2 killed, one continued", s)
	}
	time.Sleep(300 * time.Millisecond)
	if st := procStateOf(jobPid); st != "T" {
		t.Fatalf("a process stopped by SIGSTOP, not by the gate: state %q after the restart, want left stopped", st)
	}
	var born uint64
	if err := pinned.Lookup(uint32(jobPid), &born); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("the stale entry of pid %d: %v, want deleted", jobPid, err)
	}
}

// TestGateRestartAfterSIGKILL: the agent runs in a process of its own
// (this test binary, re-executed) and is killed with SIGKILL while its
// gate holds a drifted entrypoint (adoption slowed by 3 s): the kernel
// closes its BPF links, fanotify group and maps, the pinned list stays.
// The entrypoint stays stopped; the next agent kills it before it ran
// and reports it refused.
func TestGateRestartAfterSIGKILL(t *testing.T) {
	c, addr, ctx, probe, img := gateWorld(t)
	dir := t.TempDir()
	t.Cleanup(func() { unix.Unmount(filepath.Join(dir, "canary"), unix.MNT_DETACH) }) // the killed agent's canary mount
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childAgentEnv+"="+addr+"|"+testNS+"|"+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the child agent ended before it was ready")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child agent was not ready in 30 s")
	}
	pid, wait := startEntrypoint(t, ctx, c, img, "gatesigkill", append(append([]byte{}, probe...), "drifted"...))
	for deadline := time.Now().Add(5 * time.Second); procStateOf(pid) != "T"; sleepTick() {
		if time.Now().After(deadline) {
			t.Fatal("the entrypoint was never held")
		}
	}
	time.Sleep(100 * time.Millisecond) // its event read: pending in the child
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(300 * time.Millisecond)
	if st := procStateOf(pid); st != "T" {
		t.Fatalf("after the agent was SIGKILLed, the entrypoint's state %q, want still stopped", st)
	}
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col, withExecEvents)
	if code, escaped := wait(); code != 128+int(syscall.SIGKILL) || escaped {
		t.Fatalf("held when the agent was SIGKILLed: exit %d, escaped %v; want killed (137) before it ran", code, escaped)
	}
	if e := col.lastReason(0, "gatesigkill", ReasonBeforeAdoption+"/"+ReasonNotInImage); e == nil || e.Verdict != VerdictRefused {
		t.Fatalf("held when the agent was SIGKILLed: event %+v, want refused before-adoption/not-in-image", e)
	}
	if s := a.gateStats(); s.Recovered != 1 {
		t.Fatalf("gate %+v, want 1 recovered", s)
	}
}

// childAgentEnv ("containerd address|namespace|canary dir") makes the test binary an
// agent in prevent, adoption slowed by 3 s, that prints "ready" and runs
// until it is killed (TestGateRestartAfterSIGKILL).
const childAgentEnv = "BULWARK_TEST_GATE_AGENT"

func maybeChildAgent() {
	v, ok := os.LookupEnv(childAgentEnv)
	if !ok {
		return
	}
	f := strings.SplitN(v, "|", 3)
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "want", childAgentEnv+"=ADDRESS|NAMESPACE|DIR")
		os.Exit(2)
	}
	addr, ns, canary := f[0], f[1], f[2]
	a, err := New(Config{Mode: ModePrevent, Address: addr, Namespaces: []string{ns}, Report: func(Event) {}, CanaryDir: canary,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), ExecEventsDefault: true, adoptDelay: delay(3 * time.Second), GateCgroup: ns})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case <-a.Ready():
		fmt.Println("ready")
	case err := <-done:
		fmt.Fprintln(os.Stderr, "child agent:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "child agent:", <-done)
	os.Exit(2)
}
