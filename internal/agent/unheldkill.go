package agent

import (
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// With fanotify, an exec from a mount no mark holds runs unasked (unheld.go):
// a fresh tmpfs, or a copy of a bind, in a user and mount namespace the
// process made; a mount attached before the agent marked it; a detached
// mount (fsmount, open_tree); a memfd where vm.memfd_noexec could not be
// set. The exec sensor closes this in the kernel for prevent containers:
// the agent names each watched container's cgroup and what its marks hold
// (its own filesystems by device, the other mounts by unique mount id), and
// in sched_process_exec an exec by a process in a prevent container's
// cgroup, or one below it, of a file on neither is killed (SIGKILL, before
// the new program runs an instruction) and reported refused, reason
// unheld-mount or memfd. In detect the same exec runs and is reported.
//
// In prevent with fanotify the sensor is on unless --exec-events=false;
// without it the container's gap stays named (mounts.go). While a learning
// window is open drift runs, so unheld execs are only reported; the kill
// starts when the window locks (from the end of the window to the agent's
// lock, at most its learning loop's tick, they run and are reported).

// optBool is a boolean flag that knows whether it was given.
type optBool struct{ set, v bool }

func (o *optBool) String() string { return strconv.FormatBool(o.v) }
func (o *optBool) Type() string   { return "bool" }
func (o *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	o.set, o.v = true, v
	return nil
}

// execEventsFlag defines --exec-events on fs.
func execEventsFlag(fs *pflag.FlagSet) *optBool {
	var o optBool
	fs.Var(&o, "exec-events", "report every exec and exit in watched containers (pid, parent, uid, path, argv) from the exec sensor: counted in the metrics, logged at debug level; "+
		"unset: on in prevent with fanotify, where it kills execs from mounts the marks do not hold")
	fs.Lookup("exec-events").NoOptDefVal = "true"
	return &o
}

// defaultExecEvents turns the exec sensor on where prevent with fanotify
// needs it, when --exec-events was not given.
func (a *Agent) defaultExecEvents() {
	if a.cfg.ExecEventsDefault && !a.cfg.ExecEvents && a.fan != nil && a.mayPrevent() { // modes.go
		a.cfg.ExecEvents = true
		a.log.Info("exec sensor on: prevent kills execs from mounts fanotify's marks do not hold (--exec-events=false turns it off)")
	}
}

// startSensor loads the exec sensor, nil when the kernel refuses it
// (logged: then prevent's gaps stay open and named).
func (a *Agent) startSensor() *execmon.Monitor {
	m, err := execmon.StartWith(execmon.Options{PinDir: heldPinDir(a.gateDir())}) // gaterecover.go
	if err != nil {
		a.log.Warn("exec sensor unavailable: exec and exit events are not reported, unheld execs are not killed", "error", err.Error())
		return nil
	}
	if n := m.PinNote(); n != "" {
		a.log.Warn(n)
	}
	if err := m.Pinned(); err != nil { // gaterecover.go
		a.log.Warn("the gate's held processes are not pinned: an agent that dies leaves what its gate held stopped", "error", err.Error())
	}
	if !m.Epochs() {
		a.log.Warn("the exec sensor cannot tell when an exec began (no syscall tracepoints): one begun before a later mount's mark can run from it unasked")
	}
	a.procMon.Store(m)
	return m
}

// sensorWatch names c to the exec sensor, what it holds first: in prevent
// its unheld execs are killed from then on, and its mount gap is closed
// but for what the kill cannot see.
func (a *Agent) sensorWatch(c *container) {
	m := a.procMon.Load()
	if m == nil || a.fan == nil || c.canary {
		return
	}
	kill := c.mode == ModePrevent && !c.learn.open(time.Now()) // a learning window lets drift run: killed from its lock
	err := errors.New("its cgroup v2 id is unknown")
	if c.cgroup != 0 {
		err = m.Hold(c.cgroup, append([]uint64{c.dev}, c.devs...), c.mounts)
	}
	if err == nil {
		err = m.Watch(c.cgroup, kill)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if c.cgroup != 0 {
			_ = m.Unwatch(c.cgroup)
		}
		if kill && c.mountGap != "" {
			a.log.Error("prevent has a gap in this container: execs from mounts in namespaces its processes make are not held", "container", c.id, "why", c.mountGap, "error", err.Error())
		}
		return
	}
	c.sensed = true
	if kill && c.mountGap != "" {
		c.mountGap = killGap(c.mountGap)
	}
}

// sensorKill makes the exec sensor kill c's unheld execs once its learning
// window is locked, in prevent. a.mu is held.
func (a *Agent) sensorKill(c *container) {
	if m := a.procMon.Load(); m != nil && c.sensed && c.mode == ModePrevent {
		if err := m.Watch(c.cgroup, true); err != nil {
			a.log.Error("the exec sensor does not kill unheld execs in this container", "container", c.id, "error", err.Error())
			return
		}
		c.mountGap = killGap(c.mountGap)
	}
}

// killGap is what remains of a mount gap once unheld execs are killed: a
// process with CAP_SYS_ADMIN can mount a writable cgroup2 and leave its
// container's cgroup, and the kill with it.
func killGap(gap string) string {
	if gap == gapSysAdmin {
		return "it has CAP_SYS_ADMIN: it can move its processes out of its cgroup, where the exec sensor does not kill unheld execs"
	}
	return ""
}

// sensorHold names the mounts marked since adoption to the exec sensor and
// releases the filesystems and mounts c no longer has (a device number
// comes back for another filesystem; a mount id does not, but a container
// that mounts and unmounts without end would fill the sensor's map, which
// every container shares). a.mu is held.
func (a *Agent) sensorHold(c *container, own, mnts []uint64) {
	m := a.procMon.Load()
	if m == nil || !c.sensed {
		return
	}
	gone, goneMnts := missing(c.devs, own), missing(c.mounts, mnts)
	if err := m.Release(c.cgroup, gone, goneMnts); err != nil {
		a.log.Warn("releasing unmounted filesystems in the exec sensor", "container", c.id, "error", err.Error())
	}
	added, addedMnts := missing(own, c.devs), missing(mnts, c.mounts)
	if len(added)+len(addedMnts) == 0 {
		return // what is held stays held from when it was
	}
	// Marked already: an exec that began before now may have opened its
	// file before the marks, unasked; for it these are not held (the
	// sensor kills it, TestMountedThenRun).
	err := m.Advance()
	if err == nil {
		err = m.Hold(c.cgroup, added, addedMnts)
	}
	if err != nil {
		a.log.Error("mounts attached to the container are not known to the exec sensor: prevent kills their execs", "container", c.id, "error", err.Error())
	}
}

// missing is what of was is not in now.
func missing(was, now []uint64) []uint64 {
	var out []uint64
	for _, x := range was {
		if !slices.Contains(now, x) {
			out = append(out, x)
		}
	}
	return out
}

// sensorUnwatch forgets c in the exec sensor. a.mu is held.
func (a *Agent) sensorUnwatch(c *container) {
	if m := a.procMon.Load(); m != nil && c.sensed {
		if err := m.Unwatch(c.cgroup); err != nil {
			a.log.Warn("forgetting a container in the exec sensor", "container", c.id, "error", err.Error())
		}
		c.sensed = false
	}
}
