package fanotify

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The mount namespace of a reported mount: the id of a namespace
// (NS_GET_MNTNS_ID, Linux 6.10) and whether a mount is in it
// (statmount(2) with mnt_ns_id, Linux 6.11). golang.org/x/sys has the
// numbers but no wrappers.

// mntIDReq is struct mnt_id_req (MNT_ID_REQ_SIZE_VER1).
type mntIDReq struct {
	size, nsFD uint32
	mntID      uint64
	param      uint64
	nsID       uint64
}

const (
	statmountMntBasic = 0x2                // STATMOUNT_MNT_BASIC
	lsmtRoot          = 0xffffffffffffffff // LSMT_ROOT: every mount of the namespace
)

// MountNSID is the unique id of the mount namespace at path (a
// /proc/PID/ns/mnt), never reused.
func MountNSID(path string) (uint64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("opening mount namespace %q: %w", path, err)
	}
	defer unix.Close(fd)
	var id uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.NS_GET_MNTNS_ID, uintptr(unsafe.Pointer(&id))); e != 0 {
		return 0, fmt.Errorf("reading the id of mount namespace %q: %w", path, e)
	}
	return id, nil
}

// InMountNS says whether the mount with unique id mnt is in the mount
// namespace ns (a MountNSID): false once it is detached.
func InMountNS(mnt, ns uint64) (bool, error) {
	req := mntIDReq{size: unix.MNT_ID_REQ_SIZE_VER1, mntID: mnt, nsID: ns}
	var buf [512]byte // struct statmount, strings asked for none
	_, _, e := unix.Syscall6(unix.SYS_STATMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	switch e {
	case 0:
		return true, nil
	case unix.ENOENT:
		return false, nil
	}
	return false, fmt.Errorf("looking for mount %d in mount namespace %d: %w", mnt, ns, e)
}

// ListMounts appends the unique ids of the mounts of the mount namespace
// ns (a MountNSID) to dst (listmount(2), Linux 6.8; of another namespace
// 6.11).
func ListMounts(ns uint64, dst []uint64) ([]uint64, error) {
	req := mntIDReq{size: unix.MNT_ID_REQ_SIZE_VER1, mntID: lsmtRoot, nsID: ns}
	var ids [256]uint64
	for {
		n, _, e := unix.Syscall6(unix.SYS_LISTMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&ids[0])), uintptr(len(ids)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return dst, fmt.Errorf("listing the mounts of mount namespace %d: %w", ns, e)
		}
		dst = append(dst, ids[:n]...)
		if int(n) < len(ids) {
			return dst, nil
		}
		req.param = ids[n-1] // from past the last
	}
}
