package fanotify

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MarkExecFD holds every exec of a file on what fd (an O_PATH descriptor,
// of a directory or a file) is on: the whole filesystem, or with mount set only that one mount (one
// vfsmount of one mount namespace: the other mounts of the same
// filesystem, the host's among them, are not held).
func (l *Listener) MarkExecFD(fd int, mount bool) error {
	how := uint(unix.FAN_MARK_FILESYSTEM)
	if mount {
		how = unix.FAN_MARK_MOUNT
	}
	// Through the descriptor's magic link: the kernel takes no O_PATH
	// descriptor as the object itself, and "." reaches no file mount.
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.FanotifyMark(l.fd, unix.FAN_MARK_ADD|how, unix.FAN_OPEN_EXEC_PERM, unix.AT_FDCWD, p); err != nil {
		return fmt.Errorf("marking descriptor %d for exec permission events: %w", fd, err)
	}
	return nil
}

// Marks counts the listener's marks on filesystems and on mounts, as the
// kernel lists them (/proc/self/fdinfo): a mark goes when its filesystem
// or mount is gone.
func (l *Listener) Marks() (filesystems, mounts int, err error) {
	f, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(l.fd))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the fanotify marks: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		switch {
		case strings.HasPrefix(sc.Text(), "fanotify sdev:"):
			filesystems++
		case strings.HasPrefix(sc.Text(), "fanotify mnt_id:"):
			mounts++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading the fanotify marks: %w", err)
	}
	return filesystems, mounts, nil
}

// NewMountNotify starts a listener of mount attachments (FAN_REPORT_MNT,
// Linux 6.15): see MarkMountNS and WaitAny. Nothing is held.
func NewMountNotify() (*Listener, error) {
	return newListener(unix.FAN_CLASS_NOTIF|unix.FAN_REPORT_MNT, 0, "mount notifications")
}

// newListener starts a non-blocking listener of class (with flags) whose
// event files are opened read-only with fileFlags.
func newListener(class, fileFlags uint, what string) (*Listener, error) {
	fd, err := unix.FanotifyInit(class|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_CLOEXEC|fileFlags)
	if err != nil {
		return nil, fmt.Errorf("starting fanotify %s: %w", what, err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("starting fanotify %s: %w", what, err)
	}
	return &Listener{fd: fd, stop: stop}, nil
}

// MarkMountNS reports every mount attached or detached in the mount
// namespace ns (a /proc/PID/ns/mnt path) to a NewMountNotify listener.
func (l *Listener) MarkMountNS(ns string) error {
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening mount namespace %q: %w", ns, err)
	}
	defer unix.Close(fd)
	if err := unix.FanotifyMark(l.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MNTNS, unix.FAN_MNT_ATTACH|unix.FAN_MNT_DETACH, fd, ""); err != nil {
		return fmt.Errorf("marking mount namespace %q for mount attachments: %w", ns, err)
	}
	return nil
}

// WaitAny waits for events and drops them, returning how many there were;
// ErrClosed after Close. ReadMounts says what they were.
func (l *Listener) WaitAny(buf []byte) (int, error) {
	count := 0
	err := l.waitRead(buf, func(n int) error {
		return eachEvent(buf[:n], func(*unix.FanotifyEventMetadata, []byte) { count++ })
	})
	return count, err
}

// waitRead waits until the listener has events, reads them into buf and
// hands the byte count to got; ErrClosed after Close.
func (l *Listener) waitRead(buf []byte, got func(n int) error) error {
	l.readers.RLock()
	defer l.readers.RUnlock()
	for {
		if l.closed.Load() {
			return ErrClosed
		}
		n, err := unix.Read(l.fd, buf)
		switch {
		case err == nil:
			return got(n)
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return fmt.Errorf("reading fanotify events: %w", err)
		}
		fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}, {Fd: int32(l.stop), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return fmt.Errorf("waiting for fanotify events: %w", err)
		}
		if fds[1].Revents != 0 {
			return ErrClosed
		}
	}
}

// eachEvent calls fn with each event in b and its information records,
// closing the event's descriptor if it has one.
func eachEvent(b []byte, fn func(m *unix.FanotifyEventMetadata, info []byte)) error {
	for off := 0; off+metaSize <= len(b); {
		m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&b[off]))
		if m.Event_len < uint32(metaSize) || off+int(m.Event_len) > len(b) {
			return fmt.Errorf("reading fanotify events: bad event length %d", m.Event_len)
		}
		if m.Fd >= 0 {
			unix.Close(int(m.Fd))
		}
		fn(m, b[off+int(m.Metadata_len):off+int(m.Event_len)])
		off += int(m.Event_len)
	}
	return nil
}
