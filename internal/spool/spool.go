package spool

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Limits.
const (
	// MinBytes is the smallest bound a spool takes.
	MinBytes = 64 << 10
	// MaxRecord is the largest record; a bigger one is refused.
	MaxRecord = 1 << 20
	// segmentsPerBound: a segment is at most MaxBytes/segmentsPerBound, so
	// dropping one frees a small part of the spool.
	segmentsPerBound = 8
	headerLen        = 16 // length, CRC, seq
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by Append for a record over MaxRecord or over a
// segment.
var ErrTooLarge = errors.New("record too large for the spool")

// Record is one spooled record.
type Record struct {
	Seq  uint64
	Data []byte
	// where it ends, so that Ack can move the read position.
	seg uint64
	end int64
}

// Stats describe a spool.
type Stats struct {
	ID      string
	Pending uint64 // records appended and not acknowledged
	Bytes   int64  // on disk
	Dropped uint64 // records dropped unsent because the spool was full
	Next    uint64 // the seq the next record gets
}

type segment struct {
	first, last uint64 // last is first-1 when empty
	size        int64
}

type state struct {
	ID      string `json:"id"`
	Acked   uint64 `json:"acked"`
	Dropped uint64 `json:"dropped"`
}

// Spool is an open spool. Its methods are safe for concurrent use.
type Spool struct {
	dir      string
	max, seg int64
	ready    chan struct{}

	mu    sync.Mutex
	st    state
	segs  []segment // oldest first
	cur   *os.File  // the last segment, open for appending
	next  uint64
	bytes int64
	// read position: the first unacknowledged record is at or after
	// offset off of segment rseg (0: not known, scan).
	rseg uint64
	roff int64
	peek []Record
	wbuf []byte
}

// Open opens (creating) the spool in dir, bounded to maxBytes on disk
// (at least MinBytes).
func Open(dir string, maxBytes int64) (*Spool, error) {
	if maxBytes < MinBytes {
		return nil, fmt.Errorf("opening spool %q: bound %d bytes is under %d", dir, maxBytes, MinBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening spool %q: %w", dir, err)
	}
	s := &Spool{dir: dir, max: maxBytes, seg: maxBytes / segmentsPerBound, ready: make(chan struct{}, 1)}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("opening spool %q: %w", dir, err)
	}
	if s.next > s.st.Acked+1 {
		s.signal()
	}
	return s, nil
}

func (s *Spool) load() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "state.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		var id [8]byte
		rand.Read(id[:])
		s.st = state{ID: hex.EncodeToString(id[:])}
		if err := s.saveState(); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s.st); err != nil || s.st.ID == "" {
			return fmt.Errorf("reading state.json: damaged (%v): move the directory aside to start a new spool", err)
		}
	}
	names, err := filepath.Glob(filepath.Join(s.dir, "seg-*.log"))
	if err != nil {
		return err
	}
	var firsts []uint64
	for _, n := range names {
		f, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "seg-"), ".log"), 10, 64)
		if err != nil || f == 0 {
			continue // not ours
		}
		firsts = append(firsts, f)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	s.next = s.st.Acked + 1
	for _, first := range firsts {
		sg, lost, err := s.scan(first)
		if err != nil {
			return err
		}
		s.st.Dropped += lost
		if sg.last <= s.st.Acked || sg.last < sg.first {
			os.Remove(s.path(first))
			continue
		}
		s.segs = append(s.segs, sg)
		s.bytes += sg.size
		s.next = max(s.next, sg.last+1)
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].size < s.seg {
		f, err := os.OpenFile(s.path(s.segs[n-1].first), os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		s.cur = f
	}
	return nil
}

// scan reads segment first, truncating it after its last good frame, and
// returns it with the number of records lost past a damaged frame (an
// estimate: the seq gap to the next segment is counted by the caller's
// acknowledgement, not here; a torn tail loses records never confirmed).
func (s *Spool) scan(first uint64) (segment, uint64, error) {
	p := s.path(first)
	f, err := os.OpenFile(p, os.O_RDWR, 0o600)
	if err != nil {
		return segment{}, 0, err
	}
	defer f.Close()
	sg := segment{first: first, last: first - 1}
	r := &frameReader{r: f}
	for {
		rec, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || rec.Seq != sg.last+1 {
			// Torn or damaged: keep what came before.
			var lost uint64
			if fi, _ := f.Stat(); fi != nil && fi.Size()-r.off > headerLen {
				lost = 1 // at least the damaged record; a torn tail was never acknowledged as written
			}
			if err := f.Truncate(r.off); err != nil {
				return segment{}, 0, fmt.Errorf("truncating %s: %w", p, err)
			}
			sg.size = r.off
			return sg, lost, nil
		}
		sg.last = rec.Seq
	}
	sg.size = r.off
	return sg, 0, nil
}

func (s *Spool) path(first uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%020d.log", first))
}

func (s *Spool) saveState() error {
	b, _ := json.Marshal(s.st)
	tmp := filepath.Join(s.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, "state.json"))
}

// Ready receives a value when records are waiting to be read.
func (s *Spool) Ready() <-chan struct{} { return s.ready }

func (s *Spool) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Append writes data as the next record and returns its seq. When the
// spool goes over its bound, the oldest segments are dropped (their
// unacknowledged records counted in Stats.Dropped).
func (s *Spool) Append(data []byte) (uint64, error) {
	n := int64(headerLen + len(data))
	if len(data) > MaxRecord || n > s.seg {
		return 0, fmt.Errorf("appending %d bytes: %w", len(data), ErrTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last := len(s.segs) - 1
	if s.cur == nil || s.segs[last].size+n > s.seg {
		if err := s.rotate(); err != nil {
			return 0, fmt.Errorf("appending to spool %q: %w", s.dir, err)
		}
		last = len(s.segs) - 1
	}
	seq := s.next
	s.wbuf = appendFrame(s.wbuf[:0], seq, data)
	if _, err := s.cur.Write(s.wbuf); err != nil {
		// A partial write is cut off at the next Open; this segment takes
		// no more.
		s.cur.Close()
		s.cur = nil
		return 0, fmt.Errorf("appending to spool %q: %w", s.dir, err)
	}
	s.next++
	s.segs[last].last = seq
	s.segs[last].size += n
	s.bytes += n
	if err := s.bound(); err != nil {
		return seq, fmt.Errorf("appending to spool %q: %w", s.dir, err)
	}
	s.signal()
	return seq, nil
}

func (s *Spool) rotate() error {
	if s.cur != nil {
		if err := s.cur.Close(); err != nil {
			return err
		}
		s.cur = nil
	}
	f, err := os.OpenFile(s.path(s.next), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.cur = f
	s.segs = append(s.segs, segment{first: s.next, last: s.next - 1})
	return nil
}

// bound drops the oldest segments (never the one being written) while
// the spool is over its bound.
func (s *Spool) bound() error {
	changed := false
	for s.bytes > s.max && len(s.segs) > 1 {
		old := s.segs[0]
		if old.last > s.st.Acked {
			s.st.Dropped += old.last - max(old.first, s.st.Acked+1) + 1
			s.st.Acked = old.last
		}
		if err := os.Remove(s.path(old.first)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		s.bytes -= old.size
		s.segs = s.segs[1:]
		if s.rseg == old.first {
			s.rseg, s.roff = 0, 0
		}
		s.peek = nil
		changed = true
	}
	if changed {
		return s.saveState()
	}
	return nil
}

// Sync flushes the segment being written to stable storage.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	if err := s.cur.Sync(); err != nil {
		return fmt.Errorf("syncing spool %q: %w", s.dir, err)
	}
	return nil
}

// Stats returns the spool's figures.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{ID: s.st.ID, Pending: s.next - 1 - s.st.Acked, Bytes: s.bytes, Dropped: s.st.Dropped, Next: s.next}
}

// Close closes the spool.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	err := s.cur.Close()
	s.cur = nil
	return err
}
