package execmon

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The gate (bpf/exec.c): once on, an exec by a container's process whose
// cgroup no watched container owns, and which is neither the agent's
// cgroup nor one Ignore named, is stopped (SIGSTOP, before the new program
// runs an instruction) and its Event says Stopped. The agent then
// continues the process (SIGCONT) or kills it. A container's process is,
// with GateUnder set, one in that cgroup or below it whatever its pid
// namespace (hostPID containers too), else one in a pid namespace of its
// own (bpf/gate.h); the host's processes outside the scope, or in the
// initial pid namespace without one, are never stopped.

// The gate map's indexes (bpf/exec.c).
const (
	gateOn    = 0
	gateSelf  = 1
	gateUnder = 2
)

// flagStopped marks an exec the gate stopped (bpf/exec.c).
const flagStopped = 8

// Gate turns the gate on or off. self is the caller's own cgroup v2 id
// (0: none): its processes are never stopped.
func (m *Monitor) Gate(on bool, self uint64) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	v := uint64(0)
	if on {
		v = 1
	}
	// self first: with the gate on, the agent's own children must already
	// pass.
	if err := m.objs.Gate.Put(uint32(gateSelf), self); err != nil {
		return fmt.Errorf("naming the agent's cgroup to the gate: %w", err)
	}
	if err := m.objs.Gate.Put(uint32(gateOn), v); err != nil {
		return fmt.Errorf("turning the gate %s: %w", map[bool]string{true: "on", false: "off"}[on], err)
	}
	return nil
}

// GateUnder limits the gate to cgroup and the cgroups below it (0: the
// whole node). Several gates on one node (tests running side by side)
// would otherwise stop, and continue, each other's processes. In the scope
// every process is taken for a container's, in the host's pid namespace
// too (hostPID containers): name a cgroup only containers' processes are
// in (a kubelet's pods' root), never one holding the host's daemons.
func (m *Monitor) GateUnder(cgroup uint64) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	if err := m.objs.Gate.Put(uint32(gateUnder), cgroup); err != nil {
		return fmt.Errorf("limiting the gate to cgroup %d: %w", cgroup, err)
	}
	return nil
}

// Ignore lets the execs of processes in cgroup (exactly: not the cgroups
// below it) through the gate. The map is bounded; the least recently used
// cgroup is forgotten first, and stopped again at its next exec.
func (m *Monitor) Ignore(cgroup uint64) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	if err := m.objs.Ignored.Put(cgroup, uint8(1)); err != nil {
		return fmt.Errorf("letting cgroup %d through the gate: %w", cgroup, err)
	}
	return nil
}

// Ignored says whether cgroup is let through the gate.
func (m *Monitor) Ignored(cgroup uint64) bool {
	done, err := m.live()
	if err != nil {
		return false
	}
	defer done()
	var v uint8
	return m.objs.Ignored.Lookup(cgroup, &v) == nil
}

// guard is the gate's guard (bpf/gatecont.c): a process the gate holds
// that another continues (SIGCONT) or wakes (a tracer's PTRACE_ATTACH,
// whose PTRACE_CONT resumes it with no SIGCONT) is killed. Linux 6.13
// (bpf_send_signal_task); without it the guard is off and Guarded says why.
type guard struct {
	objs  gatecontObjects
	links []link.Link
	err   error
}

// startGuard loads and attaches the guard, sharing held_pids with the exec
// program; a failure leaves it off (m.guard.err), not the sensor.
func (m *Monitor) startGuard() {
	g := &m.guard
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"held_pids": m.objs.HeldPids, "gate": m.objs.Gate}}
	if err := loadGatecontObjects(&g.objs, opts); err != nil {
		g.err = fmt.Errorf("loading the gate's guard: %w", err)
		return
	}
	for _, p := range []*ebpf.Program{g.objs.BulwarkGateCont, g.objs.BulwarkGateWake} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			for _, l := range g.links {
				l.Close()
			}
			g.objs.Close()
			g.objs, g.links = gatecontObjects{}, nil
			g.err = fmt.Errorf("attaching the gate's guard %s: %w", p, err)
			return
		}
		g.links = append(g.links, l)
	}
}

func (g *guard) close() error {
	if g.links == nil {
		return nil
	}
	var errs []error
	for _, l := range g.links {
		errs = append(errs, l.Close())
	}
	g.links = nil
	return errors.Join(append(errs, g.objs.Close())...)
}

// Guarded says whether a held process another continues is killed (nil)
// or why not.
func (m *Monitor) Guarded() error { return m.guard.err }

// Unhold forgets that the gate holds the process pid: the caller's SIGCONT
// that follows is not taken for another's (the guard would kill it).
func (m *Monitor) Unhold(pid uint32) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	if err := m.objs.HeldPids.Delete(pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forgetting held process %d: %w", pid, err)
	}
	return nil
}

// Continue forgets that the gate holds pid and sends it SIGCONT.
func (m *Monitor) Continue(pid uint32) error {
	if err := m.Unhold(pid); err != nil {
		return err
	}
	return unix.Kill(int(pid), unix.SIGCONT)
}

func (g *guard) killed() uint64 {
	if g.links == nil {
		return 0
	}
	var per []uint64
	if g.objs.ContKilled.Lookup(uint32(0), &per) != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}
