package bpflsm

import (
	"compress/gzip"
	"fmt"
	"io"
	"sort"
)

// initramfsEntry is one file of a guest's initramfs.
type initramfsEntry struct {
	mode         uint32 // with the type bits: 0o040755, 0o100755, 0o020600
	data         []byte
	rdevMajor    uint32
	rdevMinor    uint32
	symlinkToDst string
}

// writeInitramfs writes a gzip'd cpio archive (newc, the format the kernel
// unpacks) of entries, parents before children.
func writeInitramfs(w io.Writer, entries map[string]initramfsEntry) error {
	zw := gzip.NewWriter(w)
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	ino := uint32(1)
	for _, n := range names {
		e := entries[n]
		data := e.data
		if e.symlinkToDst != "" {
			data = []byte(e.symlinkToDst)
		}
		if err := cpioRecord(zw, ino, n, e.mode, e.rdevMajor, e.rdevMinor, data); err != nil {
			return err
		}
		ino++
	}
	if err := cpioRecord(zw, 0, "TRAILER!!!", 0, 0, 0, nil); err != nil {
		return err
	}
	return zw.Close()
}

func cpioRecord(w io.Writer, ino uint32, name string, mode, rmaj, rmin uint32, data []byte) error {
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	rec := append([]byte(hdr), name...)
	rec = append(rec, 0)
	rec = pad4(rec)
	rec = append(rec, data...)
	rec = pad4(rec)
	if _, err := w.Write(rec); err != nil {
		return fmt.Errorf("writing initramfs entry %q: %w", name, err)
	}
	return nil
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
