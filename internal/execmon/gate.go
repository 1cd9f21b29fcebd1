package execmon

import (
	"fmt"
)

// The gate (bpf/exec.c): once on, an exec by a process in a pid namespace
// of its own whose cgroup no watched container owns, and which is neither
// the agent's cgroup nor one Ignore named, is stopped (SIGSTOP, before the
// new program runs an instruction) and its Event says Stopped. The agent
// then continues the process (SIGCONT) or kills it. The host's processes
// (the initial pid namespace) are never stopped.

// The gate map's indexes (bpf/exec.c).
const (
	gateOn   = 0
	gateSelf = 1
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
