package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A container runs files from more than its root filesystem: containerd's
// default spec mounts /dev and /run as tmpfs without noexec, and volumes,
// Kubernetes emptyDirs and hostPath binds add more. Every mount of the
// container's init that is not noexec is held for exec permission too.
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

// maxMountinfo bounds what is read of a mountinfo file.
const maxMountinfo = 4 << 20

// mountEntry is one line of /proc/PID/mountinfo.
type mountEntry struct {
	point  string // where, in the process's root
	root   string // what of its filesystem is mounted ("/": all of it)
	fstype string
	dev    uint64
	noexec bool
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
		for _, o := range strings.Split(f[5], ",") {
			e.noexec = e.noexec || o == "noexec"
		}
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
// mount but its root (marked apart), the noexec ones and those that hold
// no files.
func execMounts(all []mountEntry) []mountEntry {
	var out []mountEntry
	for _, e := range all {
		if e.point == "/" || e.noexec || noFiles[e.fstype] {
			continue
		}
		out = append(out, e)
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
	b, err := readAtMost(f, nil, maxMountinfo)
	if err != nil {
		return nil, fmt.Errorf("reading the mounts of %s: %w", pid, err)
	}
	return parseMountinfo(b)
}

// markMounts holds every exec-capable mount of the container whose init is
// pid (mountinfo above) and returns the devices that are its own, to map to
// it. A mount it cannot mark is an error (the others are marked): execs
// from it would not be held.
func (a *Agent) markMounts(pid uint32) (own []uint64, err error) {
	p := strconv.Itoa(int(pid))
	all, err := readMountinfo(p)
	if err != nil {
		return nil, err
	}
	hostMounts, err := readMountinfo("self")
	if err != nil {
		return nil, err
	}
	host := make(map[uint64]bool, len(hostMounts))
	for _, e := range hostMounts {
		host[e.dev] = true
	}
	root, err := unix.Open(filepath.Join(procRoot, p, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the root of %s: %w", p, err)
	}
	defer unix.Close(root)
	var errs []error
	for _, e := range execMounts(all) {
		mine := e.root == "/" && !host[e.dev]
		if err := a.markMount(root, e, mine); err != nil {
			errs = append(errs, err)
			continue
		}
		if mine {
			own = append(own, e.dev)
		}
	}
	return own, errors.Join(errs...)
}

// markMount marks one mount, reached from the container's root without
// following a symlink (a process in the container may have planted one to
// make the agent mark a host mount).
func (a *Agent) markMount(root int, e mountEntry, whole bool) error {
	fd, err := unix.Openat2(root, e.point, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return fmt.Errorf("opening mount %q: %w", e.point, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("reading mount %q: %w", e.point, err)
	}
	if st.Dev != e.dev {
		return fmt.Errorf("mount %q: device %d:%d, mountinfo says %d:%d (hidden by another mount, or moved)",
			e.point, unix.Major(st.Dev), unix.Minor(st.Dev), unix.Major(e.dev), unix.Minor(e.dev))
	}
	if err := a.fan.MarkExecFD(fd, !whole); err != nil {
		return fmt.Errorf("mount %q (%s): %w", e.point, e.fstype, err)
	}
	return nil
}
