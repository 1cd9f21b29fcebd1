package fanotify

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Listener receives exec permission events and answers them.
type Listener struct {
	f *os.File
}

// Event is one exec held by the kernel until Allow or Deny is called. File
// is the file being executed, read-only; PID is the process calling execve.
type Event struct {
	File *os.File
	PID  int
	Mask uint64
}

// New starts a listener. It needs CAP_SYS_ADMIN.
func New() (*Listener, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_UNLIMITED_QUEUE|unix.FAN_UNLIMITED_MARKS,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("starting fanotify: %w", err)
	}
	// A non-blocking descriptor in Go's poller: Read waits without a
	// thread and Close wakes a waiting Read.
	return &Listener{f: os.NewFile(uintptr(fd), "fanotify")}, nil
}

// MarkExec holds every exec of a file on the filesystem that holds path.
func (l *Listener) MarkExec(path string) error {
	return l.mark(unix.FAN_MARK_ADD, path)
}

// UnmarkExec removes the mark MarkExec added.
func (l *Listener) UnmarkExec(path string) error {
	return l.mark(unix.FAN_MARK_REMOVE, path)
}

func (l *Listener) mark(op uint, path string) error {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("marking %q: %w", path, err)
	}
	var merr error
	if err := rc.Control(func(fd uintptr) {
		merr = unix.FanotifyMark(int(fd), op|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC_PERM, unix.AT_FDCWD, path)
	}); err != nil {
		return fmt.Errorf("marking %q: %w", path, err)
	}
	if merr != nil {
		return fmt.Errorf("marking %q for exec permission events: %w", path, merr)
	}
	return nil
}

const metaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

// ErrClosed is returned by Read after Close.
var ErrClosed = os.ErrClosed

// Read waits for events and appends them to evs. The caller must answer
// every returned event (Allow or Deny) and close its File.
func (l *Listener) Read(buf []byte, evs []Event) ([]Event, error) {
	n, err := l.f.Read(buf)
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return evs, ErrClosed
		}
		return evs, fmt.Errorf("reading fanotify events: %w", err)
	}
	for off := 0; off+metaSize <= n; {
		m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
		if m.Vers != unix.FANOTIFY_METADATA_VERSION {
			return evs, fmt.Errorf("reading fanotify events: metadata version %d, want %d", m.Vers, unix.FANOTIFY_METADATA_VERSION)
		}
		if m.Event_len < uint32(metaSize) || off+int(m.Event_len) > n {
			return evs, fmt.Errorf("reading fanotify events: bad event length %d", m.Event_len)
		}
		off += int(m.Event_len)
		if m.Mask&unix.FAN_Q_OVERFLOW != 0 || m.Fd < 0 {
			continue
		}
		evs = append(evs, Event{File: os.NewFile(uintptr(m.Fd), "exec"), PID: int(m.Pid), Mask: m.Mask})
	}
	return evs, nil
}

// Allow lets the exec of ev proceed.
func (l *Listener) Allow(ev Event) error { return l.respond(ev, unix.FAN_ALLOW) }

// Deny makes the exec of ev fail with EPERM.
func (l *Listener) Deny(ev Event) error { return l.respond(ev, unix.FAN_DENY) }

func (l *Listener) respond(ev Event, verdict uint32) error {
	r := unix.FanotifyResponse{Fd: int32(ev.File.Fd()), Response: verdict}
	b := (*[8]byte)(unsafe.Pointer(&r))[:]
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("answering fanotify event of pid %d: %w", ev.PID, err)
	}
	return nil
}

// Close stops the listener: the kernel allows every exec still pending and
// drops the marks.
func (l *Listener) Close() error { return l.f.Close() }
