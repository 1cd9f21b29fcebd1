package agent

import (
	"errors"
	"os"
	"slices"
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
// its namespace ns (0: unknown) after the read.
func (a *Agent) rereadOnce(c *container, ns uint64) ([]uint64, int) {
	if c.pid == 0 || c.canary {
		return nil, rereadDone
	}
	var before []uint64
	if ns != 0 {
		before, _ = fanotify.ListMounts(ns, nil)
	}
	host, err := hostDevices()
	if err != nil {
		a.log.Error("mounts attached to containers are not marked", "error", err.Error())
		return nil, rereadDone
	}
	m, err := a.markMounts(c.pid, host)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) { // not ended (its mounts go away with it)
		a.log.Error("some mounts of the container are not watched: their execs are not held", "container", c.id, "error", err.Error())
	}
	own, held, mnts := m.own, append(m.held, c.dev), m.mounts
	a.mu.Lock()
	if a.containers[c.id] != c { // not watched (yet, or any more)
		a.mu.Unlock()
		closePins(m.pins)
		return nil, rereadLater
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
	if ns == 0 {
		return nil, rereadDone
	}
	after, err := fanotify.ListMounts(ns, nil)
	if err != nil {
		return nil, rereadDone // ended
	}
	if !slices.Equal(before, after) || m.entries != len(after) {
		return after, rereadRaced
	}
	return after, rereadDone
}

// mountRereads is how many times the container id's mount table was read again after a
// mount report (for tests and metrics).
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
