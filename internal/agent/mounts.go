package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// A container runs files from more than its root filesystem: containerd's
// default spec mounts /dev and /run as tmpfs without noexec, and volumes,
// Kubernetes emptyDirs and hostPath binds add more. Every mount of the
// container's init that can hold files is held for exec permission too,
// noexec ones included: a process with CAP_SYS_ADMIN can remount one exec,
// which attaches nothing (no report, mountwatch.go), and an exec refused by
// noexec costs one event.
//
// How each is marked decides what else waits on the agent:
//   - a filesystem of the container's own (mounted whole, and not mounted in
//     the agent's, i.e. the host's, mount namespace: runc's /dev tmpfs) is
//     marked whole (FAN_MARK_FILESYSTEM) and its device maps to the
//     container, like the root's;
//   - anything else (a bind of a host directory, a tmpfs the kubelet mounted
//     on the host for an emptyDir) is marked on the container's own mount
//     only (FAN_MARK_MOUNT), so the host's execs from the same filesystem
//     are not held; its execs are attributed by cgroup.
//
// The marks go with their filesystem or mount: when the container's mount
// namespace is gone, the kernel drops them (tested), so removal needs no
// unmark.

// maxMountinfo bounds what is read of a mountinfo file; a longer one is
// an error (none of its mounts is marked again: in prevent the exec sensor
// kills their execs).
const maxMountinfo = 4 << 20

// maxMountsPerContainer bounds the mounts marked for one container (its
// own filesystems and the mounts marked alone): a process with
// CAP_SYS_ADMIN can make mounts without end, and each costs a mark and an
// entry in the exec sensor's map of what is held, which every container
// shares. Mounts past it are not marked: in prevent the exec sensor kills
// their execs.
const maxMountsPerContainer = 1024

// mountEntry is one line of /proc/PID/mountinfo.
type mountEntry struct {
	point  string // where, in the process's root
	root   string // what of its filesystem is mounted ("/": all of it)
	fstype string
	dev    uint64
}

// parseMountinfo reads a mountinfo file (proc(5)).
func parseMountinfo(b []byte) ([]mountEntry, error) {
	var out []mountEntry
	for n, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("reading mountinfo line %d: %d fields, no filesystem type", n+1, len(f))
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("reading mountinfo line %d: device %q", n+1, f[2])
		}
		e := mountEntry{root: unescapeMount(f[3]), point: unescapeMount(f[4]), fstype: f[sep+1], dev: unix.Mkdev(uint32(ma), uint32(mi))}
		if !strings.HasPrefix(e.point, "/") || !strings.HasPrefix(e.root, "/") {
			return nil, fmt.Errorf("reading mountinfo line %d: paths %q %q are not absolute", n+1, e.root, e.point)
		}
		out = append(out, e)
	}
	return out, nil
}

// noFiles are filesystem types that hold no file a process can execute.
var noFiles = map[string]bool{"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true, "mqueue": true,
	"securityfs": true, "debugfs": true, "tracefs": true, "bpf": true, "fusectl": true, "configfs": true, "pstore": true,
	"binfmt_misc": true, "nsfs": true, "efivarfs": true, "autofs": true}

// execMounts is what of a container's mount table must be held: every
// mount but its root (marked apart) and those that hold no files.
func execMounts(all []mountEntry) []mountEntry {
	var out []mountEntry
	for _, e := range all {
		if e.point == "/" || noFiles[e.fstype] {
			continue
		}
		out = append(out, e)
	}
	return out
}

// coveredMounts are the entries of a mount table that a later mount hides:
// one at the same point or at a directory above it (a Kubernetes pod's
// /dev/shm: the runtime's default tmpfs, then the sandbox's shm bound over
// it). Opened by path, such a point reaches the mount on top, so the
// device check of markMount fails for it; that is not an error to report.
// A covered mount cannot be reached by path; uncovering it needs
// CAP_SYS_ADMIN and is itself a mount report (mountwatch.go), and the exec
// sensor kills execs from what no mark holds.
func coveredMounts(all []mountEntry) map[mountEntry]bool {
	out := map[mountEntry]bool{}
	later := map[string]bool{} // points mounted after the entry at hand
	for i := len(all) - 1; i >= 0; i-- {
		e := all[i]
		for p := e.point; p != "/" && p != "." && p != ""; p = path.Dir(p) {
			if later[p] {
				out[e] = true
				break
			}
		}
		later[e.point] = true
	}
	return out
}

// readMountinfo reads /proc/PID/mountinfo ("self" for the agent's own).
func readMountinfo(pid string) ([]mountEntry, error) {
	f, err := os.Open(filepath.Join(procRoot, pid, "mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("reading the mounts of %s: %w", pid, err)
	}
	defer f.Close()
	b, err := readAtMost(f, nil, maxMountinfo+1)
	if err != nil {
		return nil, fmt.Errorf("reading the mounts of %s: %w", pid, err)
	}
	if len(b) > maxMountinfo {
		return nil, fmt.Errorf("reading the mounts of %s: more than %d bytes", pid, maxMountinfo)
	}
	return parseMountinfo(b)
}

// markContainer holds every exec of c with fanotify: its root filesystem
// (root is /proc/PID/root of its init) and its other mounts, followed when
// mounts are attached later; in prevent its memfds are made unexecutable.
// Only the root's mark is required.
func (a *Agent) markContainer(c *container, root string) error {
	if err := a.fan.MarkExec(root); err != nil {
		return err
	}
	host, err := hostDevices()
	var m markedMounts
	if err == nil {
		m, err = a.markMounts(c.pid, host)
	}
	if err != nil {
		a.log.Error("some mounts of the container are not watched: their execs are not held", "container", c.id, "error", err.Error())
	}
	c.devs, c.held, c.mounts, c.pins = m.own, append(m.held, c.dev), m.mounts, m.pins
	a.watchMountNS(c, m.entries) // mountwatch.go
	c.mountGap = mountGap(int(c.pid))
	if c.mountGap != "" && c.mode == ModePrevent && a.procMon.Load() == nil { // else the exec sensor's kill closes it (unheldkill.go)
		a.log.Error("prevent has a gap in this container: execs from mounts in namespaces its processes make are not held", "container", c.id, "why", c.mountGap)
	}
	if c.mode == ModePrevent {
		a.memfdNoexec(c, int(c.pid)) // memfd.go
	}
	return nil
}

// markedMounts is what markMounts marked.
type markedMounts struct {
	own    []uint64       // devices of the filesystems that are the container's own, marked whole
	held   []uint64       // devices of every mount marked
	mounts []uint64       // unique ids of the mounts marked alone
	pins   map[uint64]int // an own device -> a descriptor of its filesystem, held open (pins.go)
	// entries is how many mounts its table listed (mountreread.go).
	entries int
}

// markMounts holds every exec-capable mount of the container whose init is
// pid (mountinfo above) and returns the devices that are its own, to map to
// it, those of every mount marked, the unique ids of the mounts marked
// alone (the exec sensor's kill, unheldkill.go) and the pins of its own
// filesystems. A mount it cannot mark is an error (the others are
// marked): execs from it would not be held. host is what hostDevices
// returns.
func (a *Agent) markMounts(pid uint32, host map[uint64]bool) (markedMounts, error) {
	p := strconv.Itoa(int(pid))
	all, err := readMountinfo(p)
	if err != nil {
		return markedMounts{}, err
	}
	root, err := unix.Open(filepath.Join(procRoot, p, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return markedMounts{}, fmt.Errorf("opening the root of %s: %w", p, err)
	}
	defer unix.Close(root)
	var errs []error
	m := markedMounts{pins: map[uint64]int{}, entries: len(all)}
	hidden := coveredMounts(all)
	for _, e := range execMounts(all) {
		if len(m.own)+len(m.mounts) >= maxMountsPerContainer {
			errs = append(errs, fmt.Errorf("more than %d mounts: %q and the rest are not marked", maxMountsPerContainer, e.point))
			break
		}
		mine := e.root == "/" && !host[e.dev]
		id, fd, err := a.markMount(root, e, mine)
		if err != nil && hidden[e] {
			continue // covered: not reachable by path (see coveredMounts)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.held = append(m.held, e.dev)
		if !mine {
			m.mounts = append(m.mounts, id)
			continue
		}
		m.own = append(m.own, e.dev)
		if _, ok := m.pins[e.dev]; ok {
			unix.Close(fd)
		} else {
			m.pins[e.dev] = fd
		}
	}
	return m, errors.Join(errs...)
}

// hostDevices are the devices mounted in the agent's mount namespace,
// which is the host's.
func hostDevices() (map[uint64]bool, error) {
	mounts, err := readMountinfo("self")
	if err != nil {
		return nil, err
	}
	host := make(map[uint64]bool, len(mounts))
	for _, e := range mounts {
		host[e.dev] = true
	}
	return host, nil
}

// markMount marks one mount, reached from the container's root without
// following a symlink (a process in the container may have planted one to
// make the agent mark a host mount), and returns its unique mount id and,
// when marked whole, a descriptor of it, the caller's to close (pins.go).
func (a *Agent) markMount(root int, e mountEntry, whole bool) (uint64, int, error) {
	fd, err := unix.Openat2(root, e.point, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return 0, -1, fmt.Errorf("opening mount %q: %w", e.point, err)
	}
	id, err := a.markMountFD(fd, e, whole)
	if err != nil || !whole {
		unix.Close(fd)
		return id, -1, err
	}
	return id, fd, nil
}

// markMountFD marks the mount of e open at fd.
func (a *Agent) markMountFD(fd int, e mountEntry, whole bool) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("reading mount %q: %w", e.point, err)
	}
	if st.Dev != e.dev {
		return 0, fmt.Errorf("mount %q: device %d:%d, mountinfo says %d:%d (hidden by another mount, or moved)",
			e.point, unix.Major(st.Dev), unix.Minor(st.Dev), unix.Major(e.dev), unix.Minor(e.dev))
	}
	id, err := execmon.MountID(fd)
	if err != nil {
		return 0, fmt.Errorf("mount %q: %w", e.point, err)
	}
	if err := a.fan.MarkExecFD(fd, !whole); err != nil {
		return 0, fmt.Errorf("mount %q (%s): %w", e.point, e.fstype, err)
	}
	return id, nil
}

// Mounts attached later to the container's own mount namespace are
// marked when the kernel reports them (mountwatch.go). Mounts in a mount
// namespace a process makes for itself are not held: a fresh tmpfs in a
// user and mount namespace of its own, or the copies a new mount namespace
// makes of the container's binds (FAN_MARK_MOUNT holds one vfsmount, not
// its copies; filesystem marks, the root's and /dev's, do hold them:
// tested). A container that can make mount namespaces is named at
// adoption.

// gapSysAdmin is the gap of a container with CAP_SYS_ADMIN.
const gapSysAdmin = "it has CAP_SYS_ADMIN: it can make mounts no report announces (new mount namespaces, detached mounts from fsmount or open_tree) " +
	"and lower vm.memfd_noexec in its pid namespace to exec memfds"

// mountGap says why a process of the container whose init is pid can make
// mounts the agent does not hold, "" when it cannot (as far as the agent
// can tell: it has no CAP_SYS_ADMIN, and either the node refuses
// unprivileged user namespaces or the container runs under a seccomp
// filter, which the runtimes' default profiles use to refuse them).
func mountGap(pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return "its capabilities are unreadable: " + err.Error()
	}
	// What its processes can have: what the init has, and, unless
	// no_new_privs, what a setuid or file-capability program it runs gets
	// back, up to the bounding set (an init running as a user drops its
	// effective capabilities, not the bounding set).
	var have, bnd uint64
	seccomp, nnp := "?", "0"
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		x, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		switch v = strings.TrimSpace(v); k {
		case "CapEff", "CapPrm", "CapAmb":
			have |= x
		case "CapBnd":
			bnd = x
		case "NoNewPrivs":
			nnp = v
		case "Seccomp":
			seccomp = v
		}
	}
	if nnp == "0" {
		have |= bnd
	}
	if have&(1<<unix.CAP_SYS_ADMIN) != 0 {
		return gapSysAdmin
	}
	if seccomp != "0" || !userNamespacesOpen() {
		return ""
	}
	return "no seccomp filter and the node allows unprivileged user namespaces: its processes can mount in namespaces of their own"
}

// userNamespacesOpen tells whether the node lets an unprivileged process
// make a user namespace.
func userNamespacesOpen() bool {
	for _, f := range []string{"sys/user/max_user_namespaces", "sys/kernel/unprivileged_userns_clone"} {
		b, err := os.ReadFile(filepath.Join(procRoot, f))
		if err == nil && strings.TrimSpace(string(b)) == "0" {
			return false
		}
	}
	return true
}
