package image

import (
	"bytes"
	"io"
	"os"
	"syscall"
)

// mapped is a read-only memory map of a whole file. Reading a layer's tar
// headers through it costs page faults on the pages touched instead of a
// system call per read; the bytes stay in the page cache, not on the heap.
type mapped struct {
	*bytes.Reader
	data []byte
	f    *os.File
}

// mapFile maps f for reading; on any failure (a pipe, a filesystem without
// mmap, an empty file) it returns f itself, which reads with pread.
func mapFile(f *os.File) (io.ReaderAt, io.Closer, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, 0, err
	}
	size := fi.Size()
	if size <= 0 || int64(int(size)) != size || !fi.Mode().IsRegular() {
		return f, f, size, nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return f, f, size, nil
	}
	m := &mapped{Reader: bytes.NewReader(data), data: data, f: f}
	return m, m, size, nil
}

func (m *mapped) Close() error {
	err := syscall.Munmap(m.data)
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}
