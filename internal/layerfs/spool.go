package layerfs

import (
	"fmt"
	"io"
	"os"
)

// spoolSegment is the unit a Spool holds content in memory in: growing
// by segments instead of one doubling slice keeps the heap at what is kept,
// not up to twice that plus the garbage of every doubling.
const spoolSegment = 64 << 10

// Spool holds kept content: in memory up to a limit, then in a temporary
// file that is unlinked at once, so nothing stays on disk whatever happens.
type Spool struct {
	dir    string
	memMax int64
	segs   [][]byte // every one full but the last
	free   [][]byte // segments dropped by Truncate, for the next writes
	f      *os.File
	size   int64
}

// NewSpool returns an empty spool; dir "" is os.TempDir, memMax 0 is 8 MiB.
func NewSpool(dir string, memMax int64) *Spool {
	if memMax <= 0 {
		memMax = 8 << 20
	}
	return &Spool{dir: dir, memMax: memMax}
}

// Size is the number of bytes written.
func (s *Spool) Size() int64 { return s.size }

func (s *Spool) Write(p []byte) (int, error) {
	if s.f == nil && s.size+int64(len(p)) > s.memMax {
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	if s.f != nil {
		n, err := s.f.WriteAt(p, s.size)
		s.size += int64(n)
		return n, err
	}
	n := len(p)
	for len(p) > 0 {
		last := len(s.segs) - 1
		if last < 0 || len(s.segs[last]) == spoolSegment {
			s.segs = append(s.segs, s.segment())
			last++
		}
		seg := s.segs[last]
		k := copy(seg[len(seg):spoolSegment], p)
		s.segs[last] = seg[:len(seg)+k]
		p = p[k:]
	}
	s.size += int64(n)
	return n, nil
}

func (s *Spool) segment() []byte {
	if k := len(s.free); k > 0 {
		seg := s.free[k-1]
		s.free = s.free[:k-1]
		return seg[:0]
	}
	return make([]byte, 0, spoolSegment)
}

// spill moves the content to an unlinked temporary file.
func (s *Spool) spill() error {
	f, err := os.CreateTemp(s.dir, ".bulwark-spool-*")
	if err != nil {
		return fmt.Errorf("creating spool file: %w", err)
	}
	os.Remove(f.Name())
	for _, seg := range s.segs {
		if _, err := f.Write(seg); err != nil {
			f.Close()
			return fmt.Errorf("writing spool file: %w", err)
		}
	}
	s.f, s.segs, s.free = f, nil, nil
	return nil
}

// Truncate drops everything past n.
func (s *Spool) Truncate(n int64) error {
	if n < 0 || n > s.size {
		return fmt.Errorf("truncating spool of %d bytes to %d", s.size, n)
	}
	s.size = n
	if s.f != nil {
		return s.f.Truncate(n)
	}
	keep := int((n + spoolSegment - 1) / spoolSegment)
	s.free = append(s.free, s.segs[keep:]...)
	s.segs = s.segs[:keep]
	if keep > 0 {
		s.segs[keep-1] = s.segs[keep-1][:n-int64(keep-1)*spoolSegment]
	}
	return nil
}

// ReadAt reads kept content.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading spool at offset %d", off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	if s.f != nil {
		n := min(int64(len(p)), s.size-off)
		k, err := s.f.ReadAt(p[:n], off)
		if err == nil && int64(k) < int64(len(p)) {
			err = io.EOF
		}
		return k, err
	}
	k := 0
	for k < len(p) && off < s.size {
		seg := s.segs[off/spoolSegment]
		c := copy(p[k:], seg[off%spoolSegment:])
		k += c
		off += int64(c)
	}
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

// Close releases the spool's memory and file.
func (s *Spool) Close() error {
	s.segs, s.free = nil, nil
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}
