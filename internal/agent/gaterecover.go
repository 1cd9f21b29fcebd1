package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// What the gate held when the agent before this one died.
//
// The gate's kernel list of held processes (pid and start time) is pinned
// in bpffs (execmon.PinDir, or one beside it per gate scope: heldPinDir;
// root's, 0700, on the host: no container
// reaches it). An agent that dies without its shutdown (a crash, an OOM
// kill, SIGKILL at a node upgrade) leaves what it held stopped; its
// successor, once the containers that run are adopted and before the gate
// is on again, judges each entry whose process still exists with the same
// start time exactly as a fresh stopped exec (gateResolve, then
// judgeFile): drift in prevent is killed and reported
// before-adoption/..., an image program continued. Crashing the agent does
// not get a drifted entrypoint continued unjudged. An entry whose process
// is gone or whose pid is another process now (another start time) is
// stale: deleted, nothing signalled. A process another continued while
// no agent ran (no guard then) is judged too: drift in prevent is killed,
// late, reported "continued before its verdict". A process stopped
// by anyone else (job control, a debugger) was never in the list: left
// alone.

// heldPinDir is where the gate's held processes are pinned: one list per
// gate scope (gateDir). Two agents that gate different cgroup subtrees of
// one node, what --gate-cgroup is for, must not share it: each one's guard
// kills, and each one's successor judges, what the list holds. They shared
// it, and another agent's guard, loaded first, killed this one's held
// entrypoint and took its entry, so the agent whose process it was never
// counted it (a CI run beside another test's agent; TestGateScopesApart).
// A successor with the same scope finds its predecessor's list.
func heldPinDir(scope string) string {
	if scope == "" {
		return execmon.PinDir
	}
	sum := sha256.Sum256([]byte(scope))
	return execmon.PinDir + "-" + hex.EncodeToString(sum[:6])
}

// unpinHeld removes the pinned list once the gate, shut down, holds
// nothing (gateClose continued all): a successor makes its own. Not for
// an agent dying as a killed one would (tests): its list is what the
// successor must find.
func (a *Agent) unpinHeld(m *execmon.Monitor) {
	if a.gate.dying.Load() {
		return
	}
	if err := m.Unpin(); err != nil {
		a.log.Warn("leaving the gate's pinned list of held processes", "error", err.Error())
	}
}

// gateRecover judges what the pinned list holds (see above).
func (a *Agent) gateRecover() {
	m := a.procMon.Load()
	if m == nil || m.Pinned() != nil {
		return
	}
	hs, err := m.HeldProcs()
	if err != nil {
		a.log.Error("reading what the gate held before this agent: those processes stay stopped", "error", err.Error())
	}
	for _, h := range hs {
		pid := int(h.PID)
		if dir := a.gateDir(); dir != "" && !inCgroup(pid, dir) {
			continue // tests: another agent's
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			a.forgetHeld(m, h, "gone", err)
			continue
		}
		// The pidfd first, then the start time: a process that is still
		// the one the kernel listed is the one the pidfd names.
		if born, err := procStartTicks(pid); err != nil || born != h.Born/nsPerTick {
			unix.Close(fd)
			a.forgetHeld(m, h, "another process has its pid", err)
			continue
		}
		if st := procStateOf(pid); st != "T" {
			// Continued while no agent ran (no guard then): a sibling of
			// a shared pid namespace, or the host. Judged all the same:
			// drift in prevent is killed, reported "continued before its
			// verdict" (judgeFile); a SIGCONT to a running one does nothing.
			a.log.Warn("a process the gate held before this agent was continued by another meanwhile: it ran unjudged until now", "pid", pid, "state", st)
		}
		ev, err := heldEvent(pid)
		if err != nil {
			a.log.Warn("reading a process held before this agent: judged as unreadable", "pid", pid, "error", err.Error())
		}
		a.gate.recovered.Add(1)
		a.log.Info("judging a process the gate held before this agent", "pid", pid, "path", ev.Path)
		a.gateHold(m, ev, fd)
	}
}

// forgetHeld deletes a stale entry of the pinned list.
func (a *Agent) forgetHeld(m *execmon.Monitor, h execmon.HeldProc, why string, err error) {
	if e := m.Unhold(h.PID); e != nil {
		a.log.Warn("deleting a stale entry of the gate's held processes", "pid", h.PID, "error", e.Error())
	}
	args := []any{"pid", h.PID, "why", why}
	if err != nil {
		args = append(args, "error", err.Error())
	}
	a.log.Info("a process the gate held before this agent is not judged", args...)
}

// nsPerTick converts the kernel's start_boottime (ns) to /proc's clock
// ticks (USER_HZ, 100 on Linux).
const nsPerTick = 1e9 / 100

// heldEvent is the event the sensor reported when it stopped pid, made
// again from /proc: the file it runs (/proc/PID/exe: device, unique mount
// id, path) and its cgroup v2 id. The path is the kernel's name of the
// file as this agent sees it, not the one given to exec.
func heldEvent(pid int) (execmon.Event, error) {
	ev := execmon.Event{Kind: execmon.KindExec, PID: uint32(pid), Stopped: true}
	p := procRoot + "/" + strconv.Itoa(pid)
	if l, err := os.Readlink(p + "/exe"); err == nil {
		ev.Path = l
	}
	var errs []error
	cg, err := cgroupID(pid)
	errs = append(errs, err)
	ev.Cgroup = cg
	f, err := os.Open(p + "/exe")
	if err == nil {
		var st unix.Stat_t
		if err = unix.Fstat(int(f.Fd()), &st); err == nil {
			ev.Dev, ev.Ino = execmon.KernelDev(st.Dev), st.Ino
			ev.Mount, err = execmon.MountID(int(f.Fd()))
		}
		f.Close()
	}
	errs = append(errs, err)
	return ev, errors.Join(errs...)
}

// procStartTicks is pid's start time (/proc/PID/stat field 22, ticks).
func procStartTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0, errors.New("reading the start time of pid " + strconv.Itoa(pid) + ": short stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// inCgroup says whether pid's cgroup v2 is dir (relative to the mount) or
// below it.
func inCgroup(pid int, dir string) bool {
	p, err := cgroupV2Path(pid)
	want := path.Clean("/" + dir)
	return err == nil && (p == want || strings.HasPrefix(p, want+"/"))
}
