package fanotify

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// MountReport is one report of a NewMountNotify listener: a mount attached
// (Attach), detached (Detach) or moved within its namespace (both). ID is
// the mount's unique id (statmount(2)'s mnt_id, never reused).
type MountReport struct {
	ID             uint64
	Attach, Detach bool
}

// maxDrain bounds the reads of one ReadMounts call: past it the queue is
// left for the next call (drained is false).
const maxDrain = 64

// ReadMounts waits for mount reports and appends them to dst, reading
// until the queue is empty (drained: every report queued before the call
// returned is in dst) or maxDrain reads were made; ErrClosed after Close.
// A report without a mount id (the kernel's queue overflowed: reports were
// dropped) is returned as MountReport{} and ErrOverflow.
func (l *Listener) ReadMounts(buf []byte, dst []MountReport) (reports []MountReport, drained bool, err error) {
	overflow := false
	parse := func(n int) error {
		return eachEvent(buf[:n], func(m *unix.FanotifyEventMetadata, info []byte) {
			if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
				overflow = true
				return
			}
			r := MountReport{Attach: m.Mask&unix.FAN_MNT_ATTACH != 0, Detach: m.Mask&unix.FAN_MNT_DETACH != 0}
			if id, ok := mountInfo(info); ok && (r.Attach || r.Detach) {
				r.ID = id
				dst = append(dst, r)
			}
		})
	}
	if err := l.waitRead(buf, parse); err != nil {
		return dst, false, err
	}
	for range maxDrain {
		n, err := l.readNow(buf)
		if err != nil {
			return dst, false, err
		}
		if n == 0 {
			drained = true
			break
		}
		if err := parse(n); err != nil {
			return dst, false, err
		}
	}
	if overflow {
		return dst, drained, ErrOverflow
	}
	return dst, drained, nil
}

// ErrOverflow says the kernel dropped reports: what they said is unknown.
var ErrOverflow = errors.New("fanotify queue overflowed: reports were dropped")

// readNow reads what is queued without waiting: 0 when nothing is.
func (l *Listener) readNow(buf []byte) (int, error) {
	l.readers.RLock()
	defer l.readers.RUnlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	for {
		n, err := unix.Read(l.fd, buf)
		switch {
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		}
		return 0, fmt.Errorf("reading fanotify events: %w", err)
	}
}

// mountInfo finds the mount id in an event's information records (struct
// fanotify_event_info_mnt: a 4-byte header, padding, the __u64 id).
func mountInfo(info []byte) (uint64, bool) {
	for len(info) >= 4 {
		typ, n := info[0], int(binary.NativeEndian.Uint16(info[2:4]))
		if n < 4 || n > len(info) {
			return 0, false
		}
		if typ == unix.FAN_EVENT_INFO_TYPE_MNT && n >= 16 {
			return binary.NativeEndian.Uint64(info[8:16]), true
		}
		info = info[n:]
	}
	return 0, false
}
