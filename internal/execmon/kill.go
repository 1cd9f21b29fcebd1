package execmon

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// What the exec program knows of the agent's containers (bpf/exec.c): a
// watched container's cgroup v2 id, and the filesystems and mounts its
// fanotify marks hold. An exec in a watched container (its cgroup or one
// below it) of a file on neither is flagged Unheld; in a container watched
// with kill, the process is sent SIGKILL in the kernel before the new
// program runs an instruction.

// The watched map's values and the held map's kinds (bpf/exec.c).
const (
	watchReport = 1
	watchKill   = 2
	heldDev     = 1
	heldMount   = 2
)

// Watch names a container by its cgroup v2 id; with kill its unheld execs
// are killed. Name what it holds (Hold) first: an exec between Watch and
// Hold is killed.
func (m *Monitor) Watch(cgroup uint64, kill bool) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	if cgroup == 0 {
		return errors.New("watching cgroup 0: no cgroup v2 id")
	}
	v := uint32(watchReport)
	if kill {
		v = watchKill
	}
	if err := m.objs.Watched.Put(cgroup, v); err != nil {
		return fmt.Errorf("watching cgroup %d in the exec sensor: %w", cgroup, err)
	}
	return nil
}

// Hold says the marks of the container with cgroup hold the filesystems
// devs (stat's encoding: marked whole) and the mounts mounts (unique mount
// ids, statx STATX_MNT_ID_UNIQUE: marked alone), from the current epoch:
// for an exec whose execve began in an earlier one they are not held.
// Call Advance between marking a mount attached later and holding it.
func (m *Monitor) Hold(cgroup uint64, devs, mounts []uint64) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	epoch := m.cur.Load()
	for _, k := range heldKeys(cgroup, devs, mounts) {
		if err := m.objs.Held.Put(k, epoch); err != nil {
			return fmt.Errorf("holding %d of kind %d for cgroup %d in the exec sensor: %w", k.Id, k.Kind, cgroup, err)
		}
	}
	return nil
}

// Release undoes Hold for devs and mounts (unmounted: a device number
// comes back for another filesystem).
func (m *Monitor) Release(cgroup uint64, devs, mounts []uint64) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	var errs []error
	for _, k := range heldKeys(cgroup, devs, mounts) {
		if err := m.objs.Held.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("releasing mounts of cgroup %d in the exec sensor: %w", cgroup, err)
	}
	return nil
}

// Unwatch forgets the container with cgroup and all it held.
func (m *Monitor) Unwatch(cgroup uint64) error {
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	if err := m.objs.Watched.Delete(cgroup); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unwatching cgroup %d in the exec sensor: %w", cgroup, err)
	}
	var gone []execHeldKey
	var v uint64
	it := m.objs.Held.Iterate()
	var key execHeldKey
	for it.Next(&key, &v) {
		if key.Cgroup == cgroup {
			gone = append(gone, key)
		}
	}
	errs := []error{it.Err()}
	for _, key := range gone {
		if err := m.objs.Held.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unwatching cgroup %d in the exec sensor: %w", cgroup, err)
	}
	return nil
}

func heldKeys(cgroup uint64, devs, mounts []uint64) []execHeldKey {
	out := make([]execHeldKey, 0, len(devs)+len(mounts))
	for _, d := range devs {
		out = append(out, execHeldKey{Cgroup: cgroup, Id: uint64(KernelDev(d)), Kind: heldDev})
	}
	for _, id := range mounts {
		out = append(out, execHeldKey{Cgroup: cgroup, Id: id, Kind: heldMount})
	}
	return out
}

// KernelDev is a device number (stat's encoding) in the kernel's own
// (s_dev: major << 20 | minor), the one events carry.
func KernelDev(dev uint64) uint32 { return unix.Major(dev)<<20 | unix.Minor(dev) }

// MountID is the unique id (Linux 6.8; the reusable one before) of the
// mount fd is on, the one the exec program compares.
func MountID(fd int) (uint64, error) {
	var sx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID_UNIQUE, &sx); err != nil {
		return 0, fmt.Errorf("reading the mount id: %w", err)
	}
	if sx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 && sx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, errors.New("reading the mount id: the kernel gives none")
	}
	return sx.Mnt_id, nil
}

// Held counts what the container with cgroup is said to hold (Hold less
// Release): the filesystems and the mounts.
func (m *Monitor) Held(cgroup uint64) (devs, mounts int, err error) {
	done, err := m.live()
	if err != nil {
		return 0, 0, err
	}
	defer done()
	var v uint64
	var key execHeldKey
	it := m.objs.Held.Iterate()
	for it.Next(&key, &v) {
		switch {
		case key.Cgroup != cgroup:
		case key.Kind == heldDev:
			devs++
		default:
			mounts++
		}
	}
	if err := it.Err(); err != nil {
		return 0, 0, fmt.Errorf("counting what cgroup %d holds in the exec sensor: %w", cgroup, err)
	}
	return devs, mounts, nil
}

// Advance starts a new epoch: an exec whose execve began before it may
// have opened its file before marks placed before it, so what Hold names
// from now on is not held for that exec. A mount attached later is marked,
// then Advance, then Hold: an exec from it that began before the mark is
// not taken as held (fanotify never saw its open). Without the syscall
// tracepoints (Epochs false) it does nothing.
func (m *Monitor) Advance() error {
	if !m.epochs {
		return nil
	}
	done, err := m.live()
	if err != nil {
		return err
	}
	defer done()
	n := m.cur.Add(1)
	if err := m.objs.Epoch.Put(uint32(0), n); err != nil {
		return fmt.Errorf("advancing the exec sensor's epoch: %w", err)
	}
	return nil
}

// Epochs reports whether execs are told apart by when they began (Advance).
func (m *Monitor) Epochs() bool { return m.epochs }
