package execmon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The gate's memory across the agent's death: held_pids (bpf/held_pids.h),
// the processes the gate stopped and no verdict has come for yet, is
// pinned in bpffs on the host, so a crashed (or OOM-killed, or upgraded)
// agent's successor finds what it left stopped and judges it. Only root
// reaches the directory (0700, root's) and it is on the host, not in any
// container: a container cannot add a pid to it, nor delete one.

// PinDir is where the agent pins the map: the host's bpffs (an agent in a
// pod must have the host's /sys/fs/bpf mounted; a bpffs mounted in the
// pod's own mount namespace dies with it).
const PinDir = "/sys/fs/bpf/bulwark-agent"

// bpffsRoot is where bpffs is mounted when it is not.
const bpffsRoot = "/sys/fs/bpf"

// heldPidsPin is the pinned map's name in the directory.
const heldPidsPin = "held_pids"

// Options are Start's.
type Options struct {
	// PinDir, when set, is a directory in bpffs (made 0700 if missing;
	// bpffs is mounted at /sys/fs/bpf first when nothing is) where the
	// gate's held processes are pinned. Pinning that fails is not fatal:
	// Pinned says why, and the held processes die with the Monitor.
	PinDir string
}

// HeldProc is a process the gate stopped and no verdict has come for yet
// (Unhold forgets it; its exit does too): its pid, and its start time as
// the kernel counts it (task start_boottime, ns since boot: /proc/PID/stat
// gives it in clock ticks).
type HeldProc struct {
	PID  uint32
	Born uint64
}

// Pinned says whether the held processes outlive the Monitor (nil) or
// why not.
func (m *Monitor) Pinned() error { return m.pinErr }

// HeldProcs lists the processes the gate holds, those stopped under an earlier
// Monitor too when the map is pinned (an agent that died).
func (m *Monitor) HeldProcs() ([]HeldProc, error) {
	done, err := m.live()
	if err != nil {
		return nil, err
	}
	defer done()
	var hs []HeldProc
	var h HeldProc
	it := m.objs.HeldPids.Iterate()
	for it.Next(&h.PID, &h.Born) {
		hs = append(hs, h)
	}
	if err := it.Err(); err != nil {
		return hs, fmt.Errorf("listing the gate's held processes: %w", err)
	}
	return hs, nil
}

// pinHeld opens the pinned held_pids in dir, or makes and pins it. A pin
// of another layout (an agent of another version) is replaced: what it
// held is lost (logged by the caller through the returned note).
func pinHeld(dir string, spec *ebpf.MapSpec) (*ebpf.Map, string, error) {
	path := filepath.Join(dir, heldPidsPin)
	note := ""
	if old, err := ebpf.LoadPinnedMap(path, nil); err == nil {
		err := spec.Compatible(old)
		if err == nil {
			return old, "", nil
		}
		note = fmt.Sprintf("the pinned map of held processes %s is of another layout (%v): replaced, what it held stays stopped", path, err)
		old.Close()
		if err := os.Remove(path); err != nil {
			return nil, note, fmt.Errorf("removing the pinned map %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("opening the pinned map %s: %w", path, err)
	}
	s := spec.Copy()
	s.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(s)
	if err != nil {
		return nil, note, fmt.Errorf("making the map of held processes: %w", err)
	}
	if err := m.Pin(path); err != nil {
		m.Close()
		return nil, note, fmt.Errorf("pinning the map of held processes at %s: %w", path, err)
	}
	return m, note, nil
}

// lockPinDir makes dir (bpffs) and takes a shared flock on it, held while
// the Monitor lives: every Monitor that uses the list in dir holds one,
// and Unpin removes the list only with the lock exclusive, so a list
// another Monitor uses is never unpinned under it (two agents of one
// scope: the old one's clean stop unpinned the new one's list, and what
// the new one then held and left at its death no successor found). A
// directory an Unpin removed while the lock was awaited is made again.
func lockPinDir(dir string) (*os.File, error) {
	for range 3 {
		if err := bpffs(dir); err != nil {
			return nil, err
		}
		f, err := os.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", dir, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", dir, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(dir, &now) == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			return f, nil
		}
		f.Close() // removed meanwhile: again
	}
	return nil, fmt.Errorf("locking %s: removed again and again", dir)
}

// bpffs makes dir, in bpffs, root's and 0700: mounts bpffs at /sys/fs/bpf
// when dir is below it and nothing is mounted there. A directory someone
// else owns is refused (they could have pinned a map of their own there).
func bpffs(dir string) error {
	parent := filepath.Dir(filepath.Clean(dir))
	var fs unix.Statfs_t
	if err := unix.Statfs(parent, &fs); err != nil {
		return fmt.Errorf("reading the filesystem of %s: %w", parent, err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		if parent != bpffsRoot {
			return fmt.Errorf("pinning in %s: %s is not bpffs", dir, parent)
		}
		if err := unix.Mount("bpf", bpffsRoot, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
			return fmt.Errorf("mounting bpffs at %s: %w", bpffsRoot, err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("making %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 {
		return fmt.Errorf("pinning in %s: not a directory of root's (uid %d, mode %o)", dir, st.Uid, st.Mode)
	}
	if st.Mode&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("making %s root's only: %w", dir, err)
		}
	}
	return nil
}

// pinOptions loads the exec program with the pinned held_pids when o
// asks for it and the kernel lets it be pinned (else m.pinErr says why).
func (m *Monitor) pinOptions(o Options) (*ebpf.CollectionOptions, error) {
	if o.PinDir == "" {
		m.pinErr = errors.New("no directory to pin in")
		return nil, nil
	}
	spec, err := loadExec()
	if err != nil {
		return nil, fmt.Errorf("loading the exec sensor: %w", err)
	}
	lock, err := lockPinDir(o.PinDir)
	if err != nil {
		m.pinErr = err
		return nil, nil
	}
	held, note, err := pinHeld(o.PinDir, spec.Maps[heldPidsPin])
	m.pinNote = note
	if err != nil {
		lock.Close()
		m.pinErr = err
		return nil, nil
	}
	m.pinLock = lock
	m.pinned = held // closed once loaded: the collection holds a clone
	m.pinPath = filepath.Join(o.PinDir, heldPidsPin)
	return &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{heldPidsPin: held}}, nil
}

// Unpin removes the pinned list, and its directory when nothing else is
// in it, if the list holds no process and no other Monitor uses it (its
// lock, lockPinDir): an agent that stops cleanly has continued everything
// it held, and its successor makes a new list. A list that still holds a
// process is kept for the successor, one another Monitor uses for it.
// Nothing is done when the list is not pinned or the Monitor is closed.
func (m *Monitor) Unpin() error {
	if m.pinPath == "" || m.pinErr != nil || m.pinLock == nil {
		return nil
	}
	done, err := m.live()
	if err != nil {
		return nil
	}
	defer done()
	fd := int(m.pinLock.Fd())
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	defer unix.Flock(fd, unix.LOCK_SH) // a conversion that fails may drop the shared lock
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil // another Monitor uses the list
	}
	if err != nil {
		return fmt.Errorf("locking %s: %w", filepath.Dir(m.pinPath), err)
	}
	var h HeldProc
	if m.objs.HeldPids.Iterate().Next(&h.PID, &h.Born) {
		return nil // held: the successor judges it
	}
	if err := os.Remove(m.pinPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpinning the gate's held processes %s: %w", m.pinPath, err)
	}
	os.Remove(filepath.Dir(m.pinPath)) // fails, harmlessly, when not empty
	return nil
}

// PinNote says what pinning replaced ("" when nothing).
func (m *Monitor) PinNote() string { return m.pinNote }
