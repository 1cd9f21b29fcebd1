package agent

import (
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// With fanotify, some execs are never held: a memfd (the kernel's internal
// shmem mount cannot be marked; in prevent vm.memfd_noexec refuses it,
// memfd.go) and a file on a mount made after adoption (a fresh tmpfs in a
// user and mount namespace of the process's own, mounts.go). The exec
// sensor (--exec-events) sees them after the fact: an exec in a watched
// container of a file whose filesystem no mark of the container holds is
// reported, verdict reported (it ran), reason memfd or unheld-mount. A copy
// of a bind mount in a new mount namespace has the bind's device: it is
// not told apart.

// Reasons for execs the marks did not hold.
const (
	// ReasonMemfd: a memfd ran (the exec sensor saw it).
	ReasonMemfd = "memfd"
	// ReasonUnheld: a file on a filesystem no mark of the container holds
	// ran (the exec sensor saw it).
	ReasonUnheld = "unheld-mount"
)

// memfdDevice is the device of the kernel's memfd filesystem, 0 when it
// cannot be probed.
func memfdDevice() uint64 {
	fd, err := unix.MemfdCreate("bulwark-agent-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Dev
}

// unheldExec reports ev, an exec the sensor saw in c, when no mark of c
// holds its file's filesystem.
func (a *Agent) unheldExec(c *container, ev execmon.Event) {
	dev := unix.Mkdev(ev.Dev>>20, ev.Dev&(1<<20-1)) // the kernel's encoding to stat's
	a.mu.RLock()
	held := len(c.held) == 0 || slices.Contains(c.held, dev) // none: BPF-LSM decides every exec by cgroup
	a.mu.RUnlock()
	if a.fan == nil || held {
		return
	}
	reason := ReasonUnheld
	if dev == a.memfdDev {
		reason = ReasonMemfd
	}
	a.stats.reported.Add(1)
	a.cfg.Report(Event{Time: time.Now().UTC(), Verdict: VerdictReported, Reason: reason, PID: int(ev.PID), Path: ev.Path,
		Container: c.id, Namespace: c.namespace, Image: c.image})
}
