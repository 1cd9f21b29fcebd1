package fanotify

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

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
