package agent

import (
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// A container's mount table is read again by one goroutine at a time: a
// report while it reads asks for one more read after it, and any number
// of reports meanwhile ask for that same one. A container mounting and
// unmounting in a loop costs the agent one read at a time, and the other
// containers' reads do not wait behind it.
//
// A read races the mounts it reads: a mount attached and detached during
// it may be in the table read and gone before anyone looks it up (its
// detach then names a mount no namespace listed). The namespace's mounts
// are listed before and after the read; if the lists differ, or the table
// read has not as many mounts as the list, the read is done again.

// reread has c's mount table read again: now, or after the read in
// flight.
func (a *Agent) reread(c *container) {
	f := &a.mounts
	f.mu.Lock()
	t := f.tracks[c]
	if t == nil || t.running {
		if t != nil {
			t.pending = true
		}
		f.mu.Unlock()
		return
	}
	t.running = true
	f.mu.Unlock()
	go a.rereadLoop(c, t)
}

// rereadLoop reads c's mount table until no report asked for another read.
func (a *Agent) rereadLoop(c *container, t *mountTrack) {
	f := &a.mounts
	f.mu.Lock()
	ns := t.ns
	f.mu.Unlock()
	for {
		ids, ok := a.rereadOnce(c, ns)
		f.mu.Lock()
		t.rereads++
		f.total.Add(1)
		if f.tracks[c] == t && ns != 0 {
			f.setIDs(c, ids)
		}
		if ok == rereadLater && time.Since(t.added) < 10*time.Second {
			t.pending = true // being adopted: read once it is watched
		}
		if ok == rereadRaced {
			t.pending = true
		}
		if !t.pending {
			t.running = false
			f.mu.Unlock()
			return
		}
		t.pending, ns = false, t.ns
		f.mu.Unlock()
		if ok == rereadLater {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// rereadOnce's outcomes.
const (
	rereadDone  = iota
	rereadRaced // the table changed while it was read: read again
	rereadLater // not watched (yet)
)

// rereadOnce reads c's mount table again, marks what is new and unmaps
// the devices of what is gone; it returns the unique ids of the mounts of
// its namespace ns (0: unknown) after the read. A read that raced a change
// logs nothing: it is done again.
func (a *Agent) rereadOnce(c *container, ns uint64) ([]uint64, int) {
	if c.pid == 0 || c.canary {
		return nil, rereadDone
	}
	var before, after []uint64
	if ns != 0 {
		before, _ = fanotify.ListMounts(ns, nil)
	}
	host, err := a.mounts.hostDevices()
	if err != nil {
		a.log.Error("mounts attached to containers are not marked", "error", err.Error())
		return nil, rereadDone
	}
	m, err := a.markMounts(c.pid, host)
	outcome := rereadDone
	if ns != 0 {
		var lerr error
		if after, lerr = fanotify.ListMounts(ns, nil); lerr == nil && (!slices.Equal(before, after) || m.entries != len(after)) {
			outcome = rereadRaced
		}
	}
	if err != nil && outcome != rereadRaced && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) { // not ended (its mounts go away with it)
		a.log.Error("some mounts of the container are not watched: their execs are not held", "container", c.id, "error", err.Error())
	}
	if !a.applyMounts(c, m, outcome != rereadRaced) {
		return nil, rereadLater
	}
	return after, outcome
}

// applyMounts makes m what c's mounts are, false if c is not watched (yet,
// or any more). logNew logs the mounts marked.
func (a *Agent) applyMounts(c *container, m markedMounts, logNew bool) bool {
	own, held, mnts := m.own, append(m.held, c.dev), m.mounts
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.containers[c.id] != c {
		closePins(m.pins)
		return false
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
	if logNew && len(held) > len(c.held) {
		a.log.Info("marked the mounts attached to a container", "container", c.id, "mounts", len(held)-len(c.held))
	}
	a.sensorHold(c, own, mnts) // unheldkill.go
	c.devs, c.held, c.mounts = own, held, mnts
	c.repin(m.pins) // after the sensor let the gone devices go (pins.go)
	return true
}

// mountRereads is how many times the mount table of the container id was
// read again after a mount report.
func (a *Agent) mountRereads(id string) int64 {
	a.mounts.mu.Lock()
	defer a.mounts.mu.Unlock()
	var n int64
	for c, t := range a.mounts.tracks {
		if c.id == id {
			n += t.rereads
		}
	}
	return n
}

// hostCache is the devices mounted in the agent's mount namespace, read
// again only when its mounts changed (listmount(2)): reading and parsing
// the host's table was half of what a container's read cost.
type hostCache struct {
	mu   sync.Mutex
	ns   uint64   // the agent's mount namespace, 0 before the first read
	ids  []uint64 // its mounts when devs was read
	devs map[uint64]bool
	off  bool // no namespace ids: read every time
}

// hostDevices is hostDevices (mounts.go), read again only when the host's
// mounts changed. The map is shared: read only.
func (f *mountFlow) hostDevices() (map[uint64]bool, error) {
	h := &f.host
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.off {
		return hostDevices()
	}
	if h.ns == 0 {
		ns, err := fanotify.MountNSID("/proc/self/ns/mnt")
		if err != nil {
			h.off = true
			return hostDevices()
		}
		h.ns = ns
	}
	ids, err := fanotify.ListMounts(h.ns, nil)
	if err != nil {
		return hostDevices()
	}
	if h.devs != nil && slices.Equal(ids, h.ids) {
		return h.devs, nil
	}
	devs, err := hostDevices()
	if err != nil {
		return nil, err
	}
	h.ids, h.devs = ids, devs
	return devs, nil
}
