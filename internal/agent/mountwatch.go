package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// Mounts attached after adoption in a container's own mount namespace (a
// volume propagated from the host, a mount by a process with
// CAP_SYS_ADMIN) are followed where the kernel reports them
// (FAN_MNT_ATTACH and FAN_MNT_DETACH, Linux 6.15): at each report the
// mount tables of the watched containers are read again, the new mounts
// marked and the devices of unmounted ones unmapped. It is after the fact: an exec
// from the new mount between its attachment and the agent's mark (measured
// in TestMountsAttachedLater) is not held. Mount namespaces a process makes
// for itself are not watched (mounts.go).

// startMountWatch opens the mount-attachment listener, nil when the kernel
// has none (logged).
func (a *Agent) startMountWatch() *fanotify.Listener {
	w, err := fanotify.NewMountNotify()
	if err != nil {
		a.log.Info("mounts attached to a container after adoption are not followed", "error", err.Error())
		return nil
	}
	return w
}

// watchMountNS follows the mount namespace of c's init.
func (a *Agent) watchMountNS(c *container) {
	if a.mountWatch == nil {
		return
	}
	if err := a.mountWatch.MarkMountNS(filepath.Join(procRoot, strconv.Itoa(int(c.pid)), "ns", "mnt")); err != nil {
		a.log.Warn("mounts attached to this container later are not followed", "container", c.id, "error", err.Error())
	}
}

// serveMounts marks the new mounts of every watched container at each
// attachment report, until ctx ends.
func (a *Agent) serveMounts(ctx context.Context) error {
	buf := make([]byte, 4096)
	for {
		if _, err := a.mountWatch.WaitAny(buf); errors.Is(err, fanotify.ErrClosed) {
			return ctx.Err()
		} else if err != nil {
			return err
		}
		a.remark()
	}
}

// remark reads the mount tables of the watched containers again and marks
// what is new (marking a marked mount again changes nothing).
func (a *Agent) remark() {
	a.mu.RLock()
	var cs []*container
	for _, c := range a.containers {
		if c.pid != 0 && !c.canary {
			cs = append(cs, c)
		}
	}
	a.mu.RUnlock()
	host, err := hostDevices()
	if err != nil {
		a.log.Error("mounts attached to containers are not marked", "error", err.Error())
		return
	}
	for _, c := range cs {
		m, err := a.markMounts(c.pid, host)
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) { // not ended (its mounts go away with it)
			a.log.Error("some mounts of the container are not watched: their execs are not held", "container", c.id, "error", err.Error())
		}
		own, held, mnts := m.own, append(m.held, c.dev), m.mounts
		a.mu.Lock()
		if a.containers[c.id] != c { // no longer watched
			a.mu.Unlock()
			closePins(m.pins)
			continue
		}
		for _, d := range c.devs {
			if !slices.Contains(own, d) && a.byDev[d] == c {
				delete(a.byDev, d) // unmounted: its number may come back for another filesystem
			}
		}
		for _, d := range own {
			if !slices.Contains(c.devs, d) && a.byDev[d] == nil {
				a.byDev[d] = c
			}
		}
		if len(held) > len(c.held) {
			a.log.Info("marked the mounts attached to a container", "container", c.id, "mounts", len(held)-len(c.held))
		}
		a.sensorHold(c, own, mnts) // unheldkill.go
		c.devs, c.held, c.mounts = own, held, mnts
		c.repin(m.pins) // after the sensor let the gone devices go (pins.go)
		a.mu.Unlock()
	}
}
