package execmon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Kind is what an Event reports.
type Kind uint32

// The kinds.
const (
	KindExec    Kind = 1
	KindExit    Kind = 2
	KindConnect Kind = 3 // an outbound TCP connection (SYN sent)
)

func (k Kind) String() string {
	switch k {
	case KindExec:
		return "exec"
	case KindExit:
		return "exit"
	case KindConnect:
		return "connect"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// Event is one exec or exit.
type Event struct {
	Kind   Kind
	Cgroup uint64 // cgroup v2 id of the process
	PID    uint32 // process (thread group) id
	PPID   uint32
	UID    uint32
	Comm   string
	// Exec only: the file's identity (the kernel's device encoding) and
	// the path given to exec, and the arguments (bounded: Truncated says
	// more were given).
	Dev       uint32
	Ino       uint64
	Path      string
	Argv      []string
	Truncated bool
	// Mount is the unique id of the mount the file was exec'd from.
	Mount uint64
	// Checked: the process is in a watched container (Watch); Cgroup is
	// then that container's, which may be an ancestor of the process's.
	// Unheld: the file is on no filesystem or mount its marks hold (Hold).
	// Killed: the container is watched with kill, and the process was
	// killed before the file ran.
	Checked, Unheld, Killed bool
	// Stopped: the gate stopped the process before the file ran (gate.go);
	// it waits for SIGCONT or SIGKILL.
	Stopped bool
	// Exit only: the wait status (exit code << 8 | signal).
	ExitCode int32
	// Connect only: where to (IPv4 or IPv6).
	Dst netip.AddrPort
}

// Event flags (bpf/exec.c).
const (
	flagChecked = 1
	flagUnheld  = 2
	flagKilled  = 4
)

// Stats are the programs' counters, summed over CPUs.
type Stats struct {
	Events uint64
	Lost   uint64 // the ring buffer was full: the event is gone, the exec was not held
	Killed uint64 // unheld execs killed (Watch with kill), reported or not
	// Stopped counts execs the gate stopped; GateLost those it killed
	// because the ring buffer had no room to report them (gate.go).
	Stopped, GateLost uint64
	// ContKilled counts held processes killed because another sent them
	// SIGCONT (the gate's guard, gate.go).
	ContKilled uint64
}

// Monitor is the loaded and attached sensor.
type Monitor struct {
	objs  execObjects
	links []link.Link

	// mu guards reader and closed; the maps are used under its read lock
	// (live), and closed under its lock.
	mu     sync.RWMutex
	reader *ringbuf.Reader

	// epochs: execve's start is recorded (the syscall tracepoints
	// attached), so a mount held later is not taken as held by an exec
	// that began before (kill.go); cur is the epoch.
	epochs bool
	cur    atomic.Uint64
	closed bool
	guard  guard // the gate's guard (gate.go), when the kernel has it
	// pinErr says why held_pids is not pinned (pin.go), pinNote what
	// pinning replaced.
	pinErr  error
	pinNote string
	pinPath string    // the pinned held_pids' path, when pinned
	pinned  *ebpf.Map // the pinned map until the programs are loaded
	pinLock *os.File  // the pin directory, flocked shared while m lives (pin.go)
}

// live holds the maps open until done is called; ErrClosed once closed.
func (m *Monitor) live() (done func(), err error) {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return nil, ErrClosed
	}
	return m.mu.RUnlock, nil
}

// ErrClosed is returned by Read once the Monitor is closed.
var ErrClosed = errors.New("execmon: closed")

// ErrFlushed is returned by Read once the events there were at Flush are read.
var ErrFlushed = errors.New("execmon: flushed")

// Start loads the programs and attaches them.
func Start() (*Monitor, error) { return StartWith(Options{}) }

// StartWith is Start with options (pin.go).
func StartWith(o Options) (*Monitor, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("starting the exec sensor: %w", err)
	}
	var m Monitor
	opts, err := m.pinOptions(o)
	if err != nil {
		return nil, err
	}
	err = loadExecObjects(&m.objs, opts)
	if m.pinned != nil {
		m.pinned.Close()
		m.pinned = nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading the exec sensor: %w", err)
	}
	for _, p := range []*ebpf.Program{m.objs.BulwarkExec, m.objs.BulwarkExit, m.objs.BulwarkConnect} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("attaching %s: %w", p, err)
		}
		m.links = append(m.links, l)
	}
	m.epochs = m.attachExecve() == nil // else later mounts race (kill.go)
	m.startGuard()                     // gate.go: optional
	r, err := ringbuf.NewReader(m.objs.Events)
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("opening the exec sensor's ring buffer: %w", err)
	}
	m.reader = r
	return &m, nil
}

// Close detaches the programs; a blocked Read returns ErrClosed.
// Closing twice, or from two goroutines, is safe.
func (m *Monitor) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	r := m.reader
	m.reader = nil
	var errs []error
	if r != nil {
		errs = append(errs, r.Close())
	}
	for _, l := range m.links {
		errs = append(errs, l.Close())
	}
	m.links = nil
	errs = append(errs, m.guard.close(), m.objs.Close())
	if m.pinLock != nil {
		m.pinLock.Close()
	}
	return errors.Join(errs...)
}

// Read blocks until the next event. One reader at a time.
func (m *Monitor) Read() (Event, error) {
	m.mu.RLock()
	r := m.reader
	m.mu.RUnlock()
	if r == nil {
		return Event{}, ErrClosed
	}
	rec, err := r.Read()
	if errors.Is(err, os.ErrClosed) || errors.Is(err, ringbuf.ErrClosed) {
		return Event{}, ErrClosed
	}
	if errors.Is(err, ringbuf.ErrFlushed) {
		return Event{}, ErrFlushed
	}
	if err != nil {
		return Event{}, fmt.Errorf("reading the exec sensor: %w", err)
	}
	return decode(rec.RawSample)
}

// Flush makes Read return the events already in the ring buffer, then
// ErrFlushed once: a reader that is to stop reads what is left first.
func (m *Monitor) Flush() error {
	m.mu.RLock()
	r := m.reader
	m.mu.RUnlock()
	if r == nil {
		return ErrClosed
	}
	return r.Flush()
}

// Stats sums the per-CPU counters.
func (m *Monitor) Stats() (Stats, error) {
	done, err := m.live()
	if err != nil {
		return Stats{}, err
	}
	defer done()
	var s Stats
	for i, f := range []*uint64{&s.Events, &s.Lost, &s.Killed, &s.Stopped, &s.GateLost} {
		var per []uint64
		if err := m.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return Stats{}, fmt.Errorf("reading counter %d: %w", i, err)
		}
		for _, v := range per {
			*f += v
		}
	}
	s.ContKilled = m.guard.killed()
	return s, nil
}

func decode(raw []byte) (Event, error) {
	var ev execEvent
	if len(raw) < binary.Size(ev) {
		return Event{}, fmt.Errorf("decoding an exec event of %d bytes: want %d", len(raw), binary.Size(ev))
	}
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev); err != nil {
		return Event{}, fmt.Errorf("decoding an exec event: %w", err)
	}
	e := Event{Kind: Kind(ev.Kind), Cgroup: ev.Cgroup, PID: ev.Pid, PPID: ev.Ppid, UID: ev.Uid, Comm: cString(ev.Comm[:]),
		Dev: ev.Dev, Ino: ev.Ino, Path: cString(ev.Path[:]), ExitCode: ev.ExitCode, Mount: ev.Mnt,
		Checked: ev.Flags&flagChecked != 0, Unheld: ev.Flags&flagUnheld != 0, Killed: ev.Flags&flagKilled != 0,
		Stopped: ev.Flags&flagStopped != 0}
	switch {
	case e.Kind == KindConnect && ev.Family == unix.AF_INET:
		e.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ev.Daddr[:4])), ev.Dport)
	case e.Kind == KindConnect && ev.Family == unix.AF_INET6:
		e.Dst = netip.AddrPortFrom(netip.AddrFrom16(ev.Daddr), ev.Dport)
	}
	if e.Kind == KindExec {
		n := min(int(ev.ArgvLen), len(ev.Argv))
		b := make([]byte, n)
		for i := range n {
			b[i] = byte(ev.Argv[i])
		}
		e.Argv, e.Truncated = splitArgv(b, n == len(ev.Argv)-1)
	}
	return e, nil
}

// splitArgv splits the NUL-separated argument block; full says the block
// was cut at its bound, so the last argument may be cut too.
func splitArgv(b []byte, full bool) ([]string, bool) {
	trailing := len(b) > 0 && b[len(b)-1] == 0
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil, full
	}
	return strings.Split(s, "\x00"), full && !trailing
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

// tracefs is where the syscall tracepoints are named.
const tracefs = "/sys/kernel/tracing"

// attachExecve attaches the programs that record when each execve begins,
// mounting tracefs first when it is not (it is not at boot on some hosts).
func (m *Monitor) attachExecve() error {
	if _, err := os.Stat(tracefs + "/events"); errors.Is(err, os.ErrNotExist) {
		if err := unix.Mount("tracefs", tracefs, "tracefs", 0, ""); err != nil {
			return fmt.Errorf("mounting tracefs at %s: %w", tracefs, err)
		}
	}
	for _, tp := range []struct {
		name string
		p    *ebpf.Program
	}{{"sys_enter_execve", m.objs.BulwarkExecve}, {"sys_enter_execveat", m.objs.BulwarkExecveat}} {
		l, err := link.Tracepoint("syscalls", tp.name, tp.p, nil)
		if err != nil {
			return fmt.Errorf("attaching %s: %w", tp.name, err)
		}
		m.links = append(m.links, l)
	}
	return nil
}
