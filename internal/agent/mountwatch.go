package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// Mounts attached after adoption in a container's own mount namespace (a
// volume propagated from the host, a mount by a process with
// CAP_SYS_ADMIN) are followed where the kernel reports them
// (FAN_MNT_ATTACH and FAN_MNT_DETACH, Linux 6.15): the container a report
// is about has its mount table read again (mountreread.go), its new mounts
// marked and the devices of unmounted ones unmapped. It is after the fact:
// an exec from the new mount between its attachment and the agent's mark
// (measured in TestMountsAttachedLater) is not held. Mount namespaces a
// process makes for itself are not watched (mounts.go).
//
// A report names a mount by its unique id. An attached mount is looked for
// in the mount namespaces of the watched containers (statmount(2), Linux
// 6.11), the last one it was found in first; a detached one can no longer
// be looked up, so its container is the one whose namespace listed it
// (listmount(2) after each read, and at adoption) or where its attachment
// was found. A mount attached and detached before it was looked up was
// seen by no read of a table but one that raced it, and such a read is
// done again (mountreread.go). Where the kernel gives no namespace id, a
// container is read again at every report, as before the reports were
// read.

// mountFlow is what serveMounts knows of the watched mount namespaces.
type mountFlow struct {
	mu     sync.Mutex
	tracks map[*container]*mountTrack
	owner  map[uint64]*container // unique mount id -> the container whose namespace has it
	last   *container            // where the last attached mount was found
	swept  time.Time
	host   hostCache    // the host's devices (mountreread.go)
	total  atomic.Int64 // tables read again (bulwark_agent_mount_rereads_total)
}

// mountTrack is one watched mount namespace.
type mountTrack struct {
	ns               uint64   // its id (NS_GET_MNTNS_ID), 0 if unknown: read again at every report
	ids              []uint64 // its mounts at the last read
	added            time.Time
	running, pending bool  // a read in flight; another asked for meanwhile
	rereads          int64 // tables read again
}

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

// watchMountNS follows the mount namespace of c's init, whose mount table
// listed entries mounts when it was read for adoption: if its namespace
// does not have as many now, a mount came or went between the read and the
// mark (and no report says so), and the table is read again once c is
// watched.
func (a *Agent) watchMountNS(c *container, entries int) {
	if a.mountWatch == nil {
		return
	}
	p := filepath.Join(procRoot, strconv.Itoa(int(c.pid)), "ns", "mnt")
	var ns uint64
	var ids []uint64
	err := a.mountWatch.MarkMountNS(p)
	if err != nil { // its reports do not come: read at everyone's, as before
		a.log.Warn("mounts attached to this container later are not reported", "container", c.id, "error", err.Error())
	} else if ns, err = fanotify.MountNSID(p); err == nil {
		ids, err = fanotify.ListMounts(ns, nil)
	}
	if err != nil {
		a.log.Info("this container's mount table is read again at every mount report of any container", "container", c.id, "error", err.Error())
		ns, ids = 0, nil
	}
	f := &a.mounts
	f.mu.Lock()
	if f.tracks == nil {
		f.tracks, f.owner = map[*container]*mountTrack{}, map[uint64]*container{}
	}
	f.tracks[c] = &mountTrack{ns: ns, added: time.Now()}
	f.setIDs(c, ids)
	f.mu.Unlock()
	if ns != 0 && len(ids) != entries {
		a.reread(c)
	}
}

// setIDs records ids as the mounts of c's namespace. f.mu is held.
func (f *mountFlow) setIDs(c *container, ids []uint64) {
	t := f.tracks[c]
	if t == nil {
		return
	}
	for _, id := range t.ids {
		if f.owner[id] == c {
			delete(f.owner, id)
		}
	}
	t.ids = ids
	for _, id := range ids {
		f.owner[id] = c
	}
}

// serveMounts reads the mount reports until ctx ends and has the
// containers they are about read again.
func (a *Agent) serveMounts(ctx context.Context) error {
	buf := make([]byte, 16<<10)
	var rs []fanotify.MountReport
	for {
		var err error
		rs, _, err = a.mountWatch.ReadMounts(buf, rs[:0])
		overflow := errors.Is(err, fanotify.ErrOverflow)
		if errors.Is(err, fanotify.ErrClosed) {
			return ctx.Err()
		} else if err != nil && !overflow {
			return err
		}
		if overflow {
			a.log.Warn("mount reports were dropped: every container's mount table is read again")
		}
		for _, c := range a.mounts.route(rs, overflow, a.isWatched) {
			a.reread(c)
		}
	}
}

// route returns the containers a batch of reports is about: each once.
// all (the kernel dropped reports) is every container. watched says
// whether a container is watched.
func (f *mountFlow) route(rs []fanotify.MountReport, all bool, watched func(*container) bool) []*container {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweep(watched)
	var out []*container
	seen := map[*container]bool{}
	add := func(c *container) {
		if c != nil && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	final := make(map[uint64]bool, len(rs)) // mount id -> attached after its last report
	for _, r := range rs {
		if r.Detach {
			add(f.owner[r.ID]) // moved, or gone: its devices may be
		}
		final[r.ID] = r.Attach
	}
	for id, attached := range final {
		if !attached {
			delete(f.owner, id)
			continue
		}
		if c := f.find(id); c != nil { // else gone already: no table has it (mountreread.go)
			f.owner[id], f.last = c, c
			add(c)
		}
	}
	for c, t := range f.tracks {
		if all || t.ns == 0 && len(rs) > 0 {
			add(c)
		}
	}
	return out
}

// find returns the container whose mount namespace has the mount id, the
// last one found first, nil if none has. f.mu is held.
func (f *mountFlow) find(id uint64) *container {
	if t := f.tracks[f.last]; t != nil && t.ns != 0 {
		if in, _ := fanotify.InMountNS(id, t.ns); in {
			return f.last
		}
	}
	for c, t := range f.tracks {
		if c == f.last || t.ns == 0 {
			continue
		}
		if in, _ := fanotify.InMountNS(id, t.ns); in {
			return c
		}
	}
	return nil
}

// sweep forgets, every 10 s, the containers no longer watched (and not
// being adopted). f.mu is held.
func (f *mountFlow) sweep(watched func(*container) bool) {
	if time.Since(f.swept) < 10*time.Second {
		return
	}
	f.swept = time.Now()
	for c, t := range f.tracks {
		if !t.running && time.Since(t.added) > 10*time.Second && !watched(c) {
			f.setIDs(c, nil)
			delete(f.tracks, c)
		}
	}
}

// isWatched says whether c is a watched container.
func (a *Agent) isWatched(c *container) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.containers[c.id] == c
}
