package fanotify

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Listener receives exec permission events and answers them. Read waits in
// poll(2) on the caller's own thread, not in Go's network poller: one
// wake-up per batch of events, the least an exec's round trip can cost.
type Listener struct {
	fd, stop int // the fanotify descriptor; an eventfd that wakes Read on Close
	once     sync.Once
	closed   atomic.Bool
	// readers is held shared by Read and WaitAny while they use fd; Close
	// takes it exclusively before closing fd (a WaitGroup's Add racing its
	// Wait at zero is a misuse the race detector reports).
	readers sync.RWMutex
}

// Event is one exec held by the kernel until Allow or Deny is called. Fd is
// the file being executed, opened read-only by the kernel: the receiver
// owns it and closes it (Close) after answering. PID is the thread calling
// execve (FAN_REPORT_TID: the process id for a single-threaded caller), so
// that what the kernel is doing for that very thread can be read
// (/proc/PID/stack).
type Event struct {
	Fd   int
	PID  int
	Mask uint64
}

// Close closes the event's file descriptor.
func (e Event) Close() error { return unix.Close(e.Fd) }

// New starts a listener. It needs CAP_SYS_ADMIN.
func New() (*Listener, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_UNLIMITED_QUEUE|unix.FAN_UNLIMITED_MARKS|unix.FAN_REPORT_TID,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("starting fanotify: %w", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("starting fanotify: %w", err)
	}
	return &Listener{fd: fd, stop: stop}, nil
}

// NewNotify starts a listener of notifications only (no permission
// events, nothing is held): see MarkCloseWrite. Its queue is the kernel's
// default (16,384 events); past it events are dropped, not held.
func NewNotify() (*Listener, error) {
	return newListener(unix.FAN_CLASS_NOTIF|unix.FAN_UNLIMITED_MARKS, unix.O_LARGEFILE, "notifications")
}

// MarkCloseWrite reports, after the fact, every close of a file that was
// open for writing on the filesystem that holds path (a NewNotify
// listener; its events need no answer, only their File closed).
func (l *Listener) MarkCloseWrite(path string) error {
	if err := unix.FanotifyMark(l.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, path); err != nil {
		return fmt.Errorf("marking %q for close-write notifications: %w", path, err)
	}
	return nil
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
	if err := unix.FanotifyMark(l.fd, op|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC_PERM, unix.AT_FDCWD, path); err != nil {
		return fmt.Errorf("marking %q for exec permission events: %w", path, err)
	}
	return nil
}

const metaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

// ErrClosed is returned by Read after Close.
var ErrClosed = os.ErrClosed

// Read waits for events and appends them to evs. The caller must answer
// every returned event (Allow or Deny) and close it.
func (l *Listener) Read(buf []byte, evs []Event) ([]Event, error) {
	l.readers.RLock()
	defer l.readers.RUnlock()
	if l.closed.Load() {
		return evs, ErrClosed
	}
	n, err := l.wait(buf)
	if err != nil {
		return evs, err
	}
	return parse(buf[:n], evs)
}

// ReadNow is Read without waiting: it appends the events queued now, none
// when there are none. A listener that has just handled a batch reads
// again with it before going back to Read: under load the next event is
// usually queued already, and one read(2) is cheaper than poll(2) and
// read(2).
func (l *Listener) ReadNow(buf []byte, evs []Event) ([]Event, error) {
	l.readers.RLock()
	defer l.readers.RUnlock()
	if l.closed.Load() {
		return evs, ErrClosed
	}
	n, err := readNow(l.fd, buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return evs, nil
	}
	if err != nil {
		return evs, fmt.Errorf("reading fanotify events: %w", err)
	}
	return parse(buf[:n], evs)
}

// parse appends the events of the n bytes read into buf.
func parse(buf []byte, evs []Event) ([]Event, error) {
	n := len(buf)
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
		evs = append(evs, Event{Fd: int(m.Fd), PID: int(m.Pid), Mask: m.Mask})
	}
	return evs, nil
}

// wait fills buf with at least one event. It waits in poll(2) first: the
// descriptor is usually empty when Read is called, and a read first would
// be one syscall more per wake-up. (Spinning on non-blocking reads after a
// batch instead of sleeping was measured and dropped: docs/runtime.md.)
func (l *Listener) wait(buf []byte) (int, error) {
	fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}, {Fd: int32(l.stop), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return 0, fmt.Errorf("waiting for fanotify events: %w", err)
		}
		if fds[1].Revents != 0 {
			return 0, ErrClosed
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := readNow(l.fd, buf)
		if err == nil {
			return n, nil
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			return 0, fmt.Errorf("reading fanotify events: %w", err)
		}
	}
}

// readNow is a non-blocking read(2) of the (O_NONBLOCK) descriptor, made
// without telling the Go scheduler: it cannot block.
func readNow(fd int, buf []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Allow lets the exec of ev proceed.
func (l *Listener) Allow(ev Event) error { return l.respond(ev, unix.FAN_ALLOW) }

// Deny makes the exec of ev fail with EPERM.
func (l *Listener) Deny(ev Event) error { return l.respond(ev, unix.FAN_DENY) }

// respond writes one answer, one write(2) per event (the kernel loops
// writev(2) over answers, but one that fails ends the call with a short
// count, its error lost and the rest unanswered:
// docs/decisions-runtime.md). A write to fanotify does not block, so it is
// made without telling the Go scheduler.
func (l *Listener) respond(ev Event, verdict uint32) error {
	r := unix.FanotifyResponse{Fd: int32(ev.Fd), Response: verdict}
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(l.fd), uintptr(unsafe.Pointer(&r)), unsafe.Sizeof(r))
	if e != 0 {
		return fmt.Errorf("answering fanotify event of pid %d: %w", ev.PID, e)
	}
	return nil
}

// Close stops the listener: the kernel allows every exec still pending and
// drops the marks.
// Readers waiting in Read return ErrClosed first.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.closed.Store(true)
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		_, _ = unix.Write(l.stop, one)
		l.readers.Lock()
		err = unix.Close(l.fd)
		unix.Close(l.stop)
		l.readers.Unlock()
	})
	return err
}
