package bpflsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Mode is what the program does about drift in one container.
type Mode uint32

// The modes; their values are the ones lsm.c compares with.
const (
	// ModeDetect lets a drifted exec run and reports it.
	ModeDetect Mode = 1
	// ModePrevent refuses a drifted exec with EPERM and reports it.
	ModePrevent Mode = 2
)

// flagMmap in a container's flags turns on the mmap_file and
// file_mprotect checks (FLAG_MMAP in lsm.c).
const flagMmap = 1

// Verdict is what the program did with a drifted exec.
type Verdict uint32

// The verdicts of Event.
const (
	VerdictReported Verdict = 1
	VerdictRefused  Verdict = 2
)

func (v Verdict) String() string {
	switch v {
	case VerdictReported:
		return "reported"
	case VerdictRefused:
		return "refused"
	}
	return fmt.Sprintf("verdict(%d)", uint32(v))
}

// Reason says why an exec was drift.
type Reason uint32

// The reasons of Event.
const (
	// ReasonNotListed: the file's identity is not in the container's list.
	ReasonNotListed Reason = 1
	// ReasonModified: the identity is listed, its change time moved.
	ReasonModified Reason = 2
)

func (r Reason) String() string {
	switch r {
	case ReasonNotListed:
		return "not-listed"
	case ReasonModified:
		return "modified"
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// Hook is the kernel hook that judged a file.
type Hook uint32

// The hooks of Event.
const (
	// HookExec: bprm_check_security, an execve or execveat.
	HookExec Hook = 1
	// HookMmap: mmap_file, a file mapped executable (the loader case).
	HookMmap Hook = 2
	// HookMprotect: file_mprotect, a file mapping made executable.
	HookMprotect Hook = 3
)

func (h Hook) String() string {
	switch h {
	case HookExec:
		return "exec"
	case HookMmap:
		return "mmap"
	case HookMprotect:
		return "mprotect"
	}
	return fmt.Sprintf("hook(%d)", uint32(h))
}

// FileID is a file's identity as the kernel sees it: the device of its
// filesystem (the kernel's encoding, major<<20|minor), its inode number and
// its change time.
type FileID struct {
	Dev       uint32
	Ino       uint64
	CtimeSec  int64
	CtimeNsec uint32
}

// FileIDOf returns the identity of the file at path (not following a final
// symlink is the caller's choice: it passes the resolved path).
func FileIDOf(path string) (FileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return FileID{}, fmt.Errorf("reading identity of %q: %w", path, err)
	}
	return fileIDFromStat(&st), nil
}

func fileIDFromStat(st *unix.Stat_t) FileID {
	// User space sees the device in the new_encode_dev layout; the kernel's
	// super_block.s_dev is MKDEV(major, minor) = major<<20 | minor.
	dev := unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)
	return FileID{Dev: uint32(dev), Ino: st.Ino, CtimeSec: st.Ctim.Sec, CtimeNsec: uint32(st.Ctim.Nsec)}
}

// Event is one drifted exec, as the program reported it.
type Event struct {
	Cgroup  uint64
	File    FileID
	PID     uint32 // thread id
	TGID    uint32 // process id
	UID     uint32
	Verdict Verdict
	Reason  Reason
	Hook    Hook
	Comm    string // the calling program's name
	Path    string // exec: the path given to exec; mmap, mprotect: the file's name (up to 255 bytes)
}

// Stats are the program's counters, summed over CPUs.
type Stats struct {
	Checked    uint64 // execs by processes of watched cgroups
	Allowed    uint64
	Reported   uint64
	Refused    uint64
	EventsLost uint64 // drift decided but the ring buffer was full
}

// Enforcer is the loaded and attached program with its maps.
type Enforcer struct {
	objs  lsmObjects
	links []link.Link

	mu     sync.Mutex
	reader *ringbuf.Reader
}

// Load loads the programs and attaches them to bprm_check_security,
// mmap_file and file_mprotect. A kernel that refuses gets an
// *UnavailableError naming the stage.
func Load() (*Enforcer, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, &UnavailableError{Stage: "memlock", Err: err}
	}
	var e Enforcer
	if err := loadLsmObjects(&e.objs, nil); err != nil {
		return nil, &UnavailableError{Stage: "load", Err: err}
	}
	for _, p := range []*ebpf.Program{e.objs.BulwarkBprmCheck, e.objs.BulwarkMmapFile, e.objs.BulwarkFileMprotect} {
		l, err := link.AttachLSM(link.LSMOptions{Program: p})
		if err != nil {
			_ = e.Close()
			return nil, &UnavailableError{Stage: "attach", Err: fmt.Errorf("attaching %s: %w", p, err)}
		}
		e.links = append(e.links, l)
	}
	return &e, nil
}

// Close detaches the program and frees its maps: from then on no exec is
// looked at (enforcement ends; it does not hang anything).
func (e *Enforcer) Close() error {
	e.mu.Lock()
	r := e.reader
	e.reader = nil
	e.mu.Unlock()
	var errs []error
	if r != nil {
		errs = append(errs, r.Close())
	}
	for _, l := range e.links {
		errs = append(errs, l.Close())
	}
	e.links = nil
	errs = append(errs, e.objs.Close())
	return errors.Join(errs...)
}

// Watch sets a cgroup's mode: from the next exec on, its processes are
// decided by its list. With mmap, every executable file mapping (mmap_file,
// file_mprotect) is judged too, which catches the loader trick; the list
// must then hold the image's shared libraries and ELF interpreter as well.
func (e *Enforcer) Watch(cgroup uint64, m Mode, mmap bool) error {
	if m != ModeDetect && m != ModePrevent {
		return fmt.Errorf("watching cgroup %d: mode %d is neither detect nor prevent", cgroup, m)
	}
	c := lsmContainer{Mode: uint32(m)}
	if mmap {
		c.Flags = flagMmap
	}
	if err := e.objs.Containers.Put(cgroup, c); err != nil {
		return fmt.Errorf("watching cgroup %d: %w", cgroup, err)
	}
	return nil
}

// Unwatch stops deciding a cgroup's execs. Its list entries stay until
// Forget removes them.
func (e *Enforcer) Unwatch(cgroup uint64) error {
	if err := e.objs.Containers.Delete(cgroup); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unwatching cgroup %d: %w", cgroup, err)
	}
	return nil
}

// Allow lists a file identity for a cgroup.
func (e *Enforcer) Allow(cgroup uint64, f FileID) error {
	k := lsmFileKey{Cgroup: cgroup, Ino: f.Ino, Dev: f.Dev}
	v := lsmFileVal{CtimeSec: f.CtimeSec, CtimeNsec: f.CtimeNsec}
	if err := e.objs.Allowed.Put(k, v); err != nil {
		return fmt.Errorf("allowing inode %d on device %#x for cgroup %d: %w", f.Ino, f.Dev, cgroup, err)
	}
	return nil
}

// Forget removes a file identity from a cgroup's list.
func (e *Enforcer) Forget(cgroup uint64, f FileID) error {
	k := lsmFileKey{Cgroup: cgroup, Ino: f.Ino, Dev: f.Dev}
	if err := e.objs.Allowed.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forgetting inode %d on device %#x for cgroup %d: %w", f.Ino, f.Dev, cgroup, err)
	}
	return nil
}

// Stats sums the program's per-CPU counters.
func (e *Enforcer) Stats() (Stats, error) {
	var s Stats
	fields := []*uint64{&s.Checked, &s.Allowed, &s.Reported, &s.Refused, &s.EventsLost}
	for i, f := range fields {
		var per []uint64
		if err := e.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return Stats{}, fmt.Errorf("reading counter %d: %w", i, err)
		}
		for _, v := range per {
			*f += v
		}
	}
	return s, nil
}

// ErrClosed is returned by ReadEvent once the Enforcer is closed.
var ErrClosed = errors.New("bpflsm: enforcer closed")

// ReadEvent blocks until the program reports a drifted exec, or the
// Enforcer is closed (ErrClosed). One reader at a time.
func (e *Enforcer) ReadEvent() (Event, error) {
	e.mu.Lock()
	if e.reader == nil {
		r, err := ringbuf.NewReader(e.objs.Events)
		if err != nil {
			e.mu.Unlock()
			return Event{}, fmt.Errorf("opening the event ring buffer: %w", err)
		}
		e.reader = r
	}
	r := e.reader
	e.mu.Unlock()
	rec, err := r.Read()
	if errors.Is(err, os.ErrClosed) {
		return Event{}, ErrClosed
	}
	if err != nil {
		return Event{}, fmt.Errorf("reading the event ring buffer: %w", err)
	}
	return decodeEvent(rec.RawSample)
}

func decodeEvent(raw []byte) (Event, error) {
	var le lsmEvent
	if len(raw) < binary.Size(le) {
		return Event{}, fmt.Errorf("decoding an event of %d bytes: want %d", len(raw), binary.Size(le))
	}
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &le); err != nil {
		return Event{}, fmt.Errorf("decoding an event: %w", err)
	}
	return Event{
		Cgroup:  le.Cgroup,
		File:    FileID{Dev: le.Dev, Ino: le.Ino, CtimeSec: le.CtimeSec, CtimeNsec: le.CtimeNsec},
		PID:     le.Pid,
		TGID:    le.Tgid,
		UID:     le.Uid,
		Verdict: Verdict(le.Verdict),
		Reason:  Reason(le.Reason),
		Hook:    Hook(le.Hook),
		Comm:    cString(le.Comm[:]),
		Path:    cString(le.Path[:]),
	}, nil
}

func cString[T ~int8 | ~uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
