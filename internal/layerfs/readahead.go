package layerfs

import (
	"errors"
	"io"
)

// readahead is an io.ReadSeeker over an io.ReaderAt that reads in large
// chunks. Indexing a layer reads a 512-byte header, seeks over the file's
// data, and reads the next header; with small files most of them sit in the
// same chunk, so a layer of thousands of files costs a few hundred reads
// instead of two system calls per file.
type readahead struct {
	ra     io.ReaderAt
	size   int64
	pos    int64
	buf    []byte
	bufOff int64
}

const readaheadChunk = 64 << 10

func newReadahead(ra io.ReaderAt, size int64) *readahead {
	return &readahead{ra: ra, size: size, buf: make([]byte, 0, readaheadChunk)}
}

func (r *readahead) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.pos < r.bufOff || r.pos >= r.bufOff+int64(len(r.buf)) {
		if len(p) >= readaheadChunk { // large reads skip the buffer
			n, err := r.ra.ReadAt(p[:min(int64(len(p)), r.size-r.pos)], r.pos)
			r.pos += int64(n)
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		}
		n, err := r.ra.ReadAt(r.buf[:min(readaheadChunk, r.size-r.pos)], r.pos)
		if n == 0 {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		r.buf, r.bufOff = r.buf[:n], r.pos
	}
	n := copy(p, r.buf[r.pos-r.bufOff:])
	r.pos += int64(n)
	return n, nil
}

func (r *readahead) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("readahead: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("readahead: negative position")
	}
	r.pos = offset
	return offset, nil
}
