package netflow

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// Conn is one established TCP connection of a process, outbound.
type Conn struct {
	Inode  uint64
	Local  netip.AddrPort
	Remote netip.AddrPort
}

// tcpEstablished and tcpListen are the kernel's TCP states.
const (
	tcpEstablished = "01"
	tcpListen      = "0A"
)

// Outbound lists the established outbound TCP connections the process pid
// holds, read from procfs (root "/proc" unless set).
func Outbound(proc string, pid int) ([]Conn, error) {
	if proc == "" {
		proc = "/proc"
	}
	inodes, err := sockets(filepath.Join(proc, strconv.Itoa(pid), "fd"))
	if err != nil {
		return nil, err
	}
	var conns []Conn
	listening := map[uint16]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "net", f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the socket table of process %d: %w", pid, err)
		}
		cs, ls, err := ParseTable(b)
		if err != nil {
			return nil, fmt.Errorf("reading /proc/%d/net/%s: %w", pid, f, err)
		}
		conns = append(conns, cs...)
		for _, p := range ls {
			listening[p] = true
		}
	}
	out := conns[:0]
	for _, c := range conns {
		if inodes[c.Inode] && !listening[c.Local.Port()] {
			out = append(out, c)
		}
	}
	return out, nil
}

// sockets are the socket inodes of the open files in dir (/proc/PID/fd).
func sockets(dir string) (map[uint64]bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing open files: %w", err)
	}
	out := map[uint64]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				out[n] = true
			}
		}
	}
	return out, nil
}

// ParseTable reads a /proc/net/tcp or tcp6 table: the established
// connections and the listening ports.
func ParseTable(b []byte) (conns []Conn, listening []uint16, err error) {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 4096), 1<<16)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			return nil, nil, fmt.Errorf("a line of %d fields, want at least 10", len(f))
		}
		local, err := parseAddr(f[1])
		if err != nil {
			return nil, nil, err
		}
		switch f[3] {
		case tcpListen:
			listening = append(listening, local.Port())
		case tcpEstablished:
			remote, err := parseAddr(f[2])
			if err != nil {
				return nil, nil, err
			}
			inode, err := strconv.ParseUint(f[9], 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("inode %q: %w", f[9], err)
			}
			conns = append(conns, Conn{Inode: inode, Local: local, Remote: remote})
		}
	}
	return conns, listening, sc.Err()
}

// parseAddr reads the kernel's "0100007F:1F90": the address as 32-bit
// words in host (little-endian) order, the port in hex.
func parseAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || (len(a) != 8 && len(a) != 32) {
		return netip.AddrPort{}, fmt.Errorf("address %q: want HEX:PORT", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", s, err)
	}
	for i := 0; i+4 <= len(raw); i += 4 { // each 32-bit word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// Tracker aggregates the connections seen per container and destination,
// counting each connection (socket) once however many scans see it.
type Tracker struct {
	Proc string // procfs root, "" is /proc

	mu   sync.Mutex
	seen map[uint64]time.Time // socket inode -> last seen
	agg  map[[2]string]*agentproto.FlowReport
}

// Observe scans the processes pids of container (running image) at now.
func (t *Tracker) Observe(container, image string, pids []int, now time.Time) error {
	var errs []error
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen, t.agg = map[uint64]time.Time{}, map[[2]string]*agentproto.FlowReport{}
	}
	for _, pid := range pids {
		conns, err := Outbound(t.Proc, pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range conns {
			_, old := t.seen[c.Inode]
			t.seen[c.Inode] = now
			dest := c.Remote.String()
			k := [2]string{container, dest}
			r := t.agg[k]
			if r == nil {
				r = &agentproto.FlowReport{Container: container, Image: image, Destination: dest, First: now.UTC()}
				t.agg[k] = r
			}
			if !old {
				r.Count++
			}
			r.Last = now.UTC()
		}
	}
	return errors.Join(errs...)
}

// Batch takes what was observed since the last Batch, for node; sockets
// not seen for ten minutes are forgotten.
func (t *Tracker) Batch(node string, now time.Time) agentproto.FlowBatch {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := agentproto.FlowBatch{Node: node, Flows: []agentproto.FlowReport{}}
	for k, r := range t.agg {
		if r.Count > 0 {
			b.Flows = append(b.Flows, *r)
		}
		delete(t.agg, k)
		if len(b.Flows) == agentproto.MaxFlows {
			break
		}
	}
	for inode, at := range t.seen {
		if now.Sub(at) > 10*time.Minute {
			delete(t.seen, inode)
		}
	}
	return b
}

// Connected counts one outbound connection of container to dst that the
// exec sensor saw when it was made (internal/execmon: every connect, even
// one opened and closed between two scans). An agent that feeds Connected
// does not also Observe the same containers: each would count it.
func (t *Tracker) Connected(container, image string, dst netip.AddrPort, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen, t.agg = map[uint64]time.Time{}, map[[2]string]*agentproto.FlowReport{}
	}
	dest := dst.String()
	k := [2]string{container, dest}
	r := t.agg[k]
	if r == nil {
		r = &agentproto.FlowReport{Container: container, Image: image, Destination: dest, First: now.UTC()}
		t.agg[k] = r
	}
	r.Count++
	r.Last = now.UTC()
}
