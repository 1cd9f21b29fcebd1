package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// The gate: hold a container's execs until it is adopted.
//
// The agent marks a container when containerd publishes /tasks/create, an
// asynchronous event, and adoption (container, image, allowlist, mounts,
// marks, the sensor's maps) takes milliseconds, while CRI starts the task
// right after its creation: a container's first execs could run before any
// mark held them. An attacker who creates pods can aim at it: an
// entrypoint from a ConfigMap volume (mode 0755) or a hostPath, not in the
// image, that runs unjudged if it wins the race.
//
// With the exec sensor and fanotify, once the containers that ran at start
// are adopted, the sensor's program stops (SIGSTOP, in the kernel, before
// the new program runs an instruction) every exec by a container's
// process (in the gate's cgroup scope whatever its pid namespace, else in a
// pid namespace of its own: gatescope.go) whose cgroup no watched container
// owns, unless the agent resolved that cgroup as not its to judge
// (bpf/exec.c). For each
// stopped exec the agent finds the container (already adopted by cgroup,
// else by the container ids /proc/PID/cgroup names, loaded from containerd
// in the watched namespaces and adopted now, once with the /tasks/create
// path), then judges the file the process runs (/proc/PID/exe) by the
// container's rules, and whether the container's marks hold its
// filesystem or mount:
//   - allowed and held: continued (SIGCONT);
//   - drift in prevent: killed (SIGKILL) and reported refused, reason
//     before-adoption/<the usual reason>;
//   - drift in detect, or in a learning window: continued and reported;
//   - not a container of the watched namespaces, or one in mode off: its
//     cgroup is let through from then on (a bounded LRU map) and the
//     process continued;
//   - an error while resolving one of ours, or no verdict in gateWait:
//     killed where the container (or, unknown, the node) may prevent
//     (fail closed, as fanotify denies an unreadable file), continued
//     otherwise; logged and counted.
//
// The host's processes (outside the gate's cgroup scope, gatescope.go, or
// without one in the initial pid namespace: containerd, the shims, runc's
// parent) are never stopped; nor is the agent's own cgroup (the agent and
// its canary; an agent in a hostPID pod of its own). hostPID containers
// are stopped only in a scope.
// On shutdown the gate is turned off first and every process still
// waiting is continued. An agent that dies without its shutdown leaves
// them stopped; the next one judges them (gaterecover.go).

// gateWait bounds how long a stopped process waits for its verdict: the
// first adoption of an image whose list is made from its layers can take
// longer; that entrypoint is then killed in prevent (its kubelet restarts
// it; the list is cached by then).
const gateWait = 5 * time.Second

// gateDrain is how long, at shutdown, the gate is off before the ring
// buffer is read to its end: an exec the program stopped just before it
// was turned off is reported by then.
const gateDrain = 20 * time.Millisecond

// ReasonBeforeAdoption prefixes the reason of an exec the gate judged:
// "before-adoption/not-in-image", "before-adoption/unheld-mount", ...
const ReasonBeforeAdoption = "before-adoption"

// gateState is what the gate has in flight.
type gateState struct {
	mu      sync.Mutex
	on      bool                 // the kernel stops execs of cgroups not known
	closing bool                 // shutting down: every stopped process is continued
	pending map[*stopped]bool    // stopped processes waiting for their verdict
	flights map[string]*adoption // adoptions under way, by container id and init pid

	scope scopeOnce // the gate's cgroup scope (gatescope.go)

	stopped, continued, killed, failed atomic.Int64
	recovered                          atomic.Int64 // held before this agent (gaterecover.go)
	// dying (tests) makes the agent stop as a killed one would: the gate
	// is left on in the kernel and what it holds stopped, unsignalled.
	dying  atomic.Bool
	waited atomic.Int64 // ns from the event read to the verdict, summed
}

// stopped is one process the gate stopped.
type stopped struct {
	pid     uint32
	pidfd   int // taken when its event was read: a pid reused later is not signalled
	at      time.Time
	settled bool
}

// adoption is one adoption under way; done is closed when c and err are set.
type adoption struct {
	done chan struct{}
	c    *container
	err  error
}

// GateStats count the gate's work (status and metrics).
type GateStats struct {
	On bool `json:"on"`
	// Stopped: execs the kernel stopped; Continued, Killed: their
	// verdicts; Failed: those resolved with an error (killed where
	// prevent, continued otherwise); Lost: execs killed in the kernel
	// because the ring buffer had no room to report them.
	Stopped, Continued, Killed, Failed, Lost int64
	// Recovered: processes the gate held when the agent before this one
	// died, judged by this one (gaterecover.go; counted in Continued or
	// Killed too, not in Stopped).
	Recovered int64
	// ContinuedByAnother: held processes another process sent SIGCONT (or woke by ptrace),
	// killed in the kernel by the gate's guard (Linux 6.13); Guard says
	// why there is none ("" when there is).
	ContinuedByAnother int64
	Guard              string `json:",omitempty"`
	// Scope is the gate's cgroup scope (gatescope.go), "" when node-wide
	// (containers in pid namespaces of their own only: hostPID ones not).
	Scope string `json:",omitempty"`
	// Waited is how long the stopped waited for their verdicts, summed
	// (from the event read to the signal): the first exec's added latency.
	Waited time.Duration
}

func (a *Agent) gateStats() GateStats {
	g := &a.gate
	g.mu.Lock()
	on := g.on
	g.mu.Unlock()
	s := GateStats{On: on, Stopped: g.stopped.Load(), Continued: g.continued.Load(), Killed: g.killed.Load(), Failed: g.failed.Load(),
		Recovered: g.recovered.Load(), Waited: time.Duration(g.waited.Load())}
	if on {
		s.Scope = a.gateDir()
	}
	if m := a.procMon.Load(); m != nil {
		if ps, err := m.Stats(); err == nil {
			s.Lost, s.ContinuedByAnother = int64(ps.GateLost), int64(ps.ContKilled)
		}
		if err := m.Guarded(); err != nil {
			s.Guard = err.Error()
		}
	}
	return s
}

// writeGateMetrics writes the gate's counters (metrics.go).
func writeGateMetrics(w io.Writer, g GateStats) {
	on := 0
	if g.On {
		on = 1
	}
	fmt.Fprintf(w, "# HELP bulwark_agent_gate_on 1 when execs of containers not yet adopted wait for their verdict.\n# TYPE bulwark_agent_gate_on gauge\nbulwark_agent_gate_on %d\n", on)
	fmt.Fprintf(w, "# HELP bulwark_agent_gate_execs_total Execs held until their container was adopted, by outcome (stopped: all; failed: resolved with an error; lost: killed in the kernel, no room to report; continued-by-another: killed in the kernel, another sent it SIGCONT or resumed it by ptrace; recovered: held when the agent before this one died, judged by this one).\n# TYPE bulwark_agent_gate_execs_total counter\n")
	for _, o := range []struct {
		k string
		v int64
	}{{"stopped", g.Stopped}, {"continued", g.Continued}, {"killed", g.Killed}, {"failed", g.Failed}, {"lost", g.Lost},
		{"continued-by-another", g.ContinuedByAnother}, {"recovered", g.Recovered}} {
		fmt.Fprintf(w, "bulwark_agent_gate_execs_total{outcome=%q} %d\n", o.k, o.v)
	}
	fmt.Fprintf(w, "# HELP bulwark_agent_gate_wait_seconds_total Time held execs waited for their verdicts.\n# TYPE bulwark_agent_gate_wait_seconds_total counter\nbulwark_agent_gate_wait_seconds_total %g\n", g.Waited.Seconds())
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// delay is a test hook: adoption waits this long before marking.
type delay time.Duration

func (d delay) sleep() {
	if d > 0 {
		time.Sleep(time.Duration(d))
	}
}

// adopt adopts container id of ns (its init is pid) once however many ask
// at the same time (the /tasks/create event, the scan, the gate): a second
// caller waits for the first's result; a container already watched with
// the same init is not adopted again. The adoption runs under Run's
// context, not the caller's: a gate that stops waiting does not cancel it.
func (a *Agent) adopt(ctx context.Context, ns, id string, pid uint32) error {
	_, err := a.adoptOnce(ctx, ns, id, pid)
	return err
}

func (a *Agent) adoptOnce(ctx context.Context, ns, id string, pid uint32) (*container, error) {
	g := &a.gate
	key := id + "/" + strconv.FormatUint(uint64(pid), 10) // a task started again is adopted again
	g.mu.Lock()
	f, ok := g.flights[key]
	if !ok {
		a.mu.RLock()
		c := a.containers[id]
		a.mu.RUnlock()
		if c != nil && c.pid == pid {
			g.mu.Unlock()
			return c, nil
		}
		f = &adoption{done: make(chan struct{})}
		if g.flights == nil {
			g.flights = map[string]*adoption{}
		}
		g.flights[key] = f
		a.mu.RLock()
		run := a.runCtx
		a.mu.RUnlock()
		if run == nil {
			run = ctx
		}
		go func() {
			f.c, f.err = a.adoptNow(namespaces.WithNamespace(run, ns), ns, id, pid)
			g.mu.Lock()
			delete(g.flights, key)
			g.mu.Unlock()
			close(f.done)
		}()
	}
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.c, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("adopting container %q: %w", id, ctx.Err())
	}
}

// gateOpen turns the gate on once the containers that ran at start are
// adopted: with the exec sensor and fanotify (the marks are what a
// container's execs would otherwise race).
func (a *Agent) gateOpen() {
	m := a.procMon.Load()
	if m == nil || a.fan == nil {
		return
	}
	self, err := cgroupID(os.Getpid())
	if err != nil { // no cgroup v2: every process has the same id; one let through would let all
		a.log.Error("the gate is off: no cgroup v2 ids; a container's first execs can run before it is adopted", "error", err.Error())
		return
	}
	if err := a.gateScope(m); err != nil {
		a.log.Error("the gate is off", "error", err.Error())
		return
	}
	if err := m.Gate(true, self); err != nil {
		a.log.Error("the gate is off: a container's first execs can run before it is adopted", "error", err.Error())
		return
	}
	a.gate.mu.Lock()
	a.gate.on = true
	a.gate.mu.Unlock()
	a.log.Info("gate on: execs of containers not yet adopted wait for their verdict")
	if err := m.Guarded(); err != nil {
		a.log.Warn("the gate has no guard: a held process another continues (a sibling in a shared pid namespace) runs before its verdict", "error", err.Error())
	}
}

// gateClose turns the gate off and continues every process it stopped:
// nothing stays stopped for an agent that is gone. Events still in the
// ring buffer are read after and continued as they come. It says whether
// the gate was on.
func (a *Agent) gateClose(m *execmon.Monitor) bool {
	g := &a.gate
	if g.dying.Load() {
		g.mu.Lock()
		g.on = false
		g.mu.Unlock()
		return false
	}
	g.mu.Lock()
	was := g.on
	g.on, g.closing = false, true
	var ps []*stopped
	for p := range g.pending {
		ps = append(ps, p)
	}
	g.mu.Unlock()
	if was {
		if err := m.Gate(false, 0); err != nil {
			a.log.Error("turning the gate off", "error", err.Error())
		}
	}
	for _, p := range ps {
		a.settle(p, unix.SIGCONT)
	}
	return was
}

// gateStopped takes a stopped exec from the sensor and judges it apart
// from the event loop (an adoption takes milliseconds).
func (a *Agent) gateStopped(m *execmon.Monitor, ev execmon.Event) {
	a.gate.stopped.Add(1)
	fd, err := unix.PidfdOpen(int(ev.PID), 0)
	if err != nil {
		a.log.Warn("a stopped exec is gone before its verdict", "pid", ev.PID, "error", err.Error())
		return
	}
	a.gateHold(m, ev, fd)
}

// gateHold judges the stopped process ev names (pidfd is its, closed once
// its verdict is sent): a fresh stopped exec, or one the gate held before
// this agent (gaterecover.go).
func (a *Agent) gateHold(m *execmon.Monitor, ev execmon.Event, pidfd int) {
	g := &a.gate
	p := &stopped{pid: ev.PID, pidfd: pidfd, at: time.Now()}
	g.mu.Lock()
	closing := g.closing
	if !closing {
		if g.pending == nil {
			g.pending = map[*stopped]bool{}
		}
		g.pending[p] = true
	}
	g.mu.Unlock()
	if closing {
		a.settle(p, unix.SIGCONT)
		return
	}
	go a.judgeStopped(m, ev, p)
}

// settle sends p its verdict once, whoever comes first (the judge, or the
// shutdown that continues everything).
func (a *Agent) settle(p *stopped, sig unix.Signal) bool {
	g := &a.gate
	g.mu.Lock()
	if p.settled {
		g.mu.Unlock()
		return false
	}
	p.settled = true
	delete(g.pending, p)
	g.mu.Unlock()
	defer unix.Close(p.pidfd)
	if m := a.procMon.Load(); m != nil && sig == unix.SIGCONT {
		if err := m.Unhold(p.pid); err != nil && !errors.Is(err, execmon.ErrClosed) { // else the guard takes our SIGCONT for another's
			a.log.Error("continuing a held exec", "pid", p.pid, "error", err.Error())
		}
	}
	waited := time.Since(p.at)
	g.waited.Add(int64(waited))
	a.log.Debug("gate verdict", "signal", sig.String(), "waited", waited)
	err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return true // gone meanwhile (killed by another): nothing to count
	case err != nil:
		a.log.Error("signalling a stopped exec", "signal", sig.String(), "error", err.Error())
	}
	if sig == unix.SIGKILL {
		g.killed.Add(1)
	} else {
		g.continued.Add(1)
	}
	return true
}

// abandon forgets p unsignalled (tests: a dying agent).
func (a *Agent) abandon(p *stopped) {
	g := &a.gate
	g.mu.Lock()
	done := p.settled
	p.settled = true
	delete(g.pending, p)
	g.mu.Unlock()
	if !done {
		unix.Close(p.pidfd)
	}
}

// judgeStopped resolves and judges one stopped exec within gateWait.
func (a *Agent) judgeStopped(m *execmon.Monitor, ev execmon.Event, p *stopped) {
	a.mu.RLock()
	run := a.runCtx
	a.mu.RUnlock()
	wait := gateWait
	if a.cfg.gateWait > 0 {
		wait = a.cfg.gateWait
	}
	ctx, cancel := context.WithTimeout(run, wait)
	defer cancel()
	c, prevent, err := a.gateResolve(ctx, ev)
	switch {
	case run.Err() != nil && a.gate.dying.Load():
		a.abandon(p) // tests: a dying agent sends nothing
	case run.Err() != nil:
		a.settle(p, unix.SIGCONT) // stopping: gateClose continues everything
	case errors.Is(err, errNoTask), errors.Is(err, errNotIts):
		a.log.Info("continuing a held exec not its container's", "pid", ev.PID, "path", ev.Path, "cgroup", ev.Cgroup, "why", err.Error())
		a.settle(p, unix.SIGCONT) // its cgroup is not let through: the container's own execs are held
	case err != nil:
		a.gate.failed.Add(1)
		sig := unix.SIGCONT
		if prevent {
			sig = unix.SIGKILL
		}
		a.log.Error("resolving a stopped exec", "pid", ev.PID, "path", ev.Path, "cgroup", ev.Cgroup, "verdict", sig.String(), "error", err.Error())
		a.settle(p, sig)
	case c == nil:
		if err := m.Ignore(ev.Cgroup); err != nil {
			a.log.Warn("letting a cgroup through the gate", "cgroup", ev.Cgroup, "error", err.Error())
		}
		a.settle(p, unix.SIGCONT)
	default:
		a.judgeFile(c, ev, p)
	}
}

// errNoTask: the stopped exec is in the cgroup of a container of the
// watched namespaces whose task does not exist or has no process yet
// (containerd says pid 0 while runc create runs). It is being created, and
// what runs in its cgroup is its runtime's, not its own: with a scope the
// gate holds host-pid-namespace processes, and runc 1.1 joins `runc init`
// to the container's cgroup and init re-executes itself from a memfd (the
// cloned binary, /dev/fd/N), in either order (seen here on a real kubelet,
// about one container in ten). Nothing of the container's runs before its
// task has its process (the entrypoint's exec comes at its start), and
// only the host's root places a process in a container's cgroup:
// continued, the cgroup not let through (that let the entrypoint run
// unheld).
var errNoTask = errors.New("the container has no task process yet")

// errNotIts: the stopped exec's cgroup path names a container of the
// watched namespaces whose pid namespace it is not in (a cgroup made below
// its own, a container of the same id elsewhere): continued as one not
// the agent's, but its cgroup is not let through, as a cgroup a container
// of ours names must never be (the container's own execs would pass).
var errNotIts = errors.New("its cgroup names a container whose pid namespace it is not in")

// gateResolve finds the container a stopped exec belongs to: nil when it
// is none of the agent's (not a container of the watched namespaces, or
// one in mode off). prevent says whether an error must kill it: the
// container's mode when it is known, else whether this node may prevent.
func (a *Agent) gateResolve(ctx context.Context, ev execmon.Event) (*container, bool, error) {
	a.mu.RLock()
	c := a.byCgroup[ev.Cgroup]
	a.mu.RUnlock()
	if c != nil && !c.canary {
		return c, c.mode == ModePrevent, nil
	}
	prevent := a.mayPrevent()
	if a.runtimeReexec(ev) { // gateruntime.go
		return nil, prevent, errNoTask
	}
	pid := int(ev.PID)
	ids, err := cgroupCandidates(pid)
	if err != nil {
		return nil, prevent, err
	}
	seen, named := map[string]bool{}, false
	for _, id := range ids {
		if seen[id] || id == "" {
			continue
		}
		seen[id] = true
		for _, ns := range a.cfg.Namespaces {
			nctx := namespaces.WithNamespace(ctx, ns)
			k, err := a.client.LoadContainer(nctx, id)
			if errdefs.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, prevent, fmt.Errorf("loading container %q: %w", id, err)
			}
			if info, err := k.Info(nctx); err == nil {
				prevent = a.modeFor(ns, info.Labels) == ModePrevent
			}
			t, err := k.Task(nctx, nil)
			if errdefs.IsNotFound(err) || (err == nil && t.Pid() == 0) {
				return nil, prevent, errNoTask // being created: runc's
			}
			if err != nil {
				return nil, prevent, fmt.Errorf("loading the task of container %q: %w", id, err)
			}
			// A container named by the process's cgroup path is its own only
			// if the process is in its init's pid namespace: not one of the
			// same id in another namespace or containerd, nor one named by
			// a cgroup the process made below its own.
			if !sameNamespace("pid", pid, int(t.Pid())) {
				named = true
				continue
			}
			c, err := a.adoptOnce(ctx, ns, id, t.Pid())
			if err != nil || c == nil {
				return nil, prevent, err
			}
			return c, c.mode == ModePrevent, nil
		}
	}
	if named {
		return nil, prevent, errNotIts
	}
	return nil, prevent, nil
}

// heldBySensor says whether c's marks hold what the sensor saw exec'd:
// its filesystem (its own, marked whole) or its mount (marked alone), as
// the sensor's kill decides (bpf/exec.c held_by).
func (a *Agent) heldBySensor(c *container, ev execmon.Event) bool {
	dev := unix.Mkdev(ev.Dev>>20, ev.Dev&(1<<20-1)) // the kernel's encoding to stat's
	a.mu.RLock()
	defer a.mu.RUnlock()
	return dev == c.dev || slices.Contains(c.devs, dev) || slices.Contains(c.mounts, ev.Mount)
}
