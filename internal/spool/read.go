package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

func appendFrame(b []byte, seq uint64, data []byte) []byte {
	var h [headerLen]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	c := crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, data)
	binary.LittleEndian.PutUint32(h[4:8], c)
	return append(append(b, h[:]...), data...)
}

var errDamaged = errors.New("damaged record")

// frameReader reads frames; off is the offset after the last good one.
type frameReader struct {
	r   io.Reader
	br  *bufio.Reader
	off int64
}

func (fr *frameReader) next() (Record, error) {
	if fr.br == nil {
		fr.br = bufio.NewReaderSize(fr.r, 64<<10)
	}
	var h [headerLen]byte
	n, err := io.ReadFull(fr.br, h[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return Record{}, io.EOF
	}
	if err != nil {
		return Record{}, errDamaged // torn header
	}
	l := binary.LittleEndian.Uint32(h[0:4])
	if l > MaxRecord {
		return Record{}, errDamaged
	}
	data := make([]byte, l)
	if _, err := io.ReadFull(fr.br, data); err != nil {
		return Record{}, errDamaged
	}
	if crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, data) != binary.LittleEndian.Uint32(h[4:8]) {
		return Record{}, errDamaged
	}
	fr.off += int64(headerLen) + int64(l)
	return Record{Seq: binary.LittleEndian.Uint64(h[8:16]), Data: data, end: fr.off}, nil
}

// Peek returns up to n unacknowledged records in seq order, at most about
// maxBytes of data (always at least one record when there is one). The
// same records come back until they are acknowledged.
func (s *Spool) Peek(n int, maxBytes int) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	size := 0
	for i, sg := range s.segs {
		if sg.last <= s.st.Acked || sg.last < sg.first {
			continue
		}
		if s.rseg != 0 && sg.first < s.rseg {
			continue
		}
		f, err := os.Open(s.path(sg.first))
		if err != nil {
			return nil, fmt.Errorf("reading spool %q: %w", s.dir, err)
		}
		var start int64
		if s.rseg == sg.first {
			start = s.roff
		}
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("reading spool %q: %w", s.dir, err)
		}
		fr := &frameReader{r: io.LimitReader(f, sg.size-start), off: start}
		for len(out) < n && (size < maxBytes || len(out) == 0) {
			rec, err := fr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("reading spool %q segment %d: %w", s.dir, sg.first, err)
			}
			if rec.Seq <= s.st.Acked {
				continue
			}
			rec.seg = sg.first
			out = append(out, rec)
			size += len(rec.Data)
		}
		f.Close()
		if len(out) >= n || size >= maxBytes || i == len(s.segs)-1 {
			break
		}
	}
	s.peek = out
	return out, nil
}

// Ack acknowledges every record up to seq: they are not read again and
// their segments are removed once wholly acknowledged.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.st.Acked {
		return nil
	}
	if seq >= s.next {
		return fmt.Errorf("acknowledging seq %d in spool %q: only %d written", seq, s.dir, s.next-1)
	}
	s.st.Acked = seq
	s.rseg, s.roff = 0, 0
	for _, r := range s.peek {
		if r.Seq == seq {
			s.rseg, s.roff = r.seg, r.end
		}
	}
	s.peek = nil
	for len(s.segs) > 0 && s.segs[0].last <= seq {
		old := s.segs[0]
		if len(s.segs) == 1 && s.cur != nil {
			s.cur.Close()
			s.cur = nil
		}
		if err := os.Remove(s.path(old.first)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("acknowledging seq %d in spool %q: %w", seq, s.dir, err)
		}
		s.bytes -= old.size
		s.segs = s.segs[1:]
		if s.rseg == old.first {
			s.rseg, s.roff = 0, 0
		}
	}
	if err := s.saveState(); err != nil {
		return fmt.Errorf("acknowledging seq %d in spool %q: %w", seq, s.dir, err)
	}
	return nil
}
