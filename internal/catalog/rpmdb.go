package catalog

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
)

// readRPMDB lists the packages of an rpm database, one header at a time, so
// that a damaged header costs that package only (reported in the
// recordErrors returned beside the packages). The database is walked here,
// not by go-rpmdb: go-rpmdb reads Berkeley DB and NDB files on a goroutine
// of its own, where a panic cannot be recovered, trusts their offsets and
// page links (a page that is not an overflow page, or a cycle of them, makes
// it loop for ever), allocates what a header's counts ask for, and gives up
// on the whole database at the first header it cannot read. The headers
// that pass checkRPMHeader are written into a new NDB file in a new
// temporary directory (go-rpmdb reads only from a path) and read by
// go-rpmdb; if it still refuses one, each is read alone to find which.
// err is a file that is no rpm database at all.
func readRPMDB(tempDir, base string, data, wal []byte) ([]*rpmdb.PackageInfo, error) {
	dir, err := os.MkdirTemp(tempDir, "bulwark-rpmdb-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	blobs, bad, err := rpmHeaders(dir, base, data, wal)
	if err != nil {
		return nil, err
	}
	all := make([][]byte, len(blobs))
	for i, b := range blobs {
		all[i] = b.data
	}
	file := filepath.Join(dir, "checked.db")
	if err := os.WriteFile(file, makeNDB(all), 0o600); err != nil {
		return nil, err
	}
	if out, err := listRPMPackages(file); err == nil {
		return out, bad.err()
	}
	// A header go-rpmdb cannot read (its reader goroutine is left blocked
	// on that database, once): find it by reading each header alone.
	var out []*rpmdb.PackageInfo
	for _, b := range blobs {
		if err := os.WriteFile(file, makeNDB([][]byte{b.data}), 0o600); err != nil {
			return nil, err
		}
		pkgs, err := listRPMPackages(file)
		if err != nil {
			bad.add(0, "%s: %v", b.where, err)
			continue
		}
		out = append(out, pkgs...)
	}
	return out, bad.err()
}

// rpmHeader is one header blob and where it was found.
type rpmHeader struct {
	where string
	data  []byte
}

// rpmHeaders returns the checked header blobs of a database; one that
// cannot be reached or fails the check is a damaged record in bad.
func rpmHeaders(dir, base string, data, wal []byte) ([]rpmHeader, recordErrors, error) {
	switch {
	case bytes.HasPrefix(data, sqliteMagic):
		file := filepath.Join(dir, base)
		if err := os.WriteFile(file, data, 0o600); err != nil {
			return nil, nil, err
		}
		if len(wal) > 0 {
			if err := os.WriteFile(file+"-wal", wal, 0o600); err != nil {
				return nil, nil, err
			}
		}
		return sqliteRPMHeaders(file)
	case len(data) < 512:
		return nil, nil, corrupt("%d bytes is too short", len(data))
	case binary.LittleEndian.Uint32(data) == 'R'|'p'<<8|'m'<<16|'P'<<24 &&
		binary.LittleEndian.Uint32(data[4:]) == 0 && binary.LittleEndian.Uint32(data[12:]) != 0:
		return ndbRPMHeaders(data)
	default:
		return bdbRPMHeaders(data)
	}
}

// listRPMPackages calls go-rpmdb, turning a panic in the header parser
// (which runs on this goroutine) into an error.
func listRPMPackages(file string) (pkgs []*rpmdb.PackageInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			pkgs, err = nil, fmt.Errorf("reading rpm headers: %v", r)
		}
	}()
	db, err := rpmdb.Open(file)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.ListPackages()
}

var (
	sqliteMagic     = []byte("SQLite format 3\x00")
	errRPMDBCorrupt = errors.New("rpm database is corrupt")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRPMDBCorrupt, fmt.Sprintf(format, args...))
}

// makeNDB builds an NDB Packages.db of blobs: the slot pages, then the
// blobs, each after its 16-byte blob header.
func makeNDB(blobs [][]byte) []byte {
	le := binary.LittleEndian
	pages := (len(blobs) + 2 + 255) / 256
	buf := make([]byte, 4096*pages)
	le.PutUint32(buf, 'R'|'p'<<8|'m'<<16|'P'<<24)
	le.PutUint32(buf[12:], uint32(pages))
	for i := range 256*pages - 2 {
		le.PutUint32(buf[32+16*i:], 'S'|'l'<<8|'o'<<16|'t'<<24)
	}
	for i, blob := range blobs {
		slot := buf[32+16*i:]
		le.PutUint32(slot[4:], uint32(i+1))
		le.PutUint32(slot[8:], uint32(len(buf)/16))
		le.PutUint32(slot[12:], uint32((16+len(blob)+15)/16))
		hdr := make([]byte, 16)
		le.PutUint32(hdr, 'B'|'l'<<8|'b'<<16|'S'<<24)
		le.PutUint32(hdr[4:], uint32(i+1))
		le.PutUint32(hdr[12:], uint32(len(blob)))
		buf = append(append(buf, hdr...), blob...)
		buf = append(buf, make([]byte, (16-len(buf)%16)%16)...)
	}
	return buf
}

// checkRPMHeader checks a header blob as rpm does before it trusts one: the
// index entries and data its first eight bytes announce are there, and each
// entry's data lies inside the data, after the previous entry's (go-rpmdb
// skips that check, and a string array whose strings are not there makes it
// rescan the data once for each string it claims, up to four billion).
func checkRPMHeader(blob []byte) error {
	if len(blob) < 8 {
		return corrupt("header of %d bytes", len(blob))
	}
	be := binary.BigEndian
	il := int64(int32(be.Uint32(blob)))
	dl := int64(int32(be.Uint32(blob[4:])))
	if il < 1 || dl < 0 || 8+16*il+dl > int64(len(blob)) {
		return corrupt("header of %d bytes announces %d entries and %d bytes of data", len(blob), il, dl)
	}
	data := blob[8+16*il : 8+16*il+dl]
	first := int64(0)
	if tag := int32(be.Uint32(blob[8:])); tag >= 61 && tag <= 63 {
		first = 1 // the region tag, whose data is the region's trailer
	}
	end := int64(0)
	for i := first; i < il; i++ {
		e := blob[8+16*i:]
		typ, off, count := be.Uint32(e[4:]), int64(int32(be.Uint32(e[8:]))), int64(be.Uint32(e[12:]))
		if off < end || off > dl {
			return corrupt("header entry %d: data at %d overlaps the previous entry's or lies outside the data", i, off)
		}
		n := int64(0)
		switch typ {
		case 6, 8, 9: // string, string array, i18n string: NUL-terminated
			if typ == 6 && count != 1 {
				return corrupt("header entry %d: %d strings for a string", i, count)
			}
			for range count {
				j := bytes.IndexByte(data[off+n:], 0)
				if j < 0 {
					return corrupt("header entry %d: fewer than %d strings", i, count)
				}
				n += int64(j) + 1
			}
		case 0, 1, 2, 3, 4, 5, 7:
			n = count * int64([]int{0, 1, 1, 2, 4, 8, 0, 1}[typ])
			if off+n > dl {
				return corrupt("header entry %d: data runs past the end", i)
			}
		default:
			return corrupt("header entry %d: unknown type %d", i, typ)
		}
		end = off + n
	}
	return nil
}

// ndbRPMHeaders walks an NDB Packages.db: a 32-byte header, slot pages of
// 16-byte slots, and for each used slot a blob header and the header blob.
func ndbRPMHeaders(data []byte) ([]rpmHeader, recordErrors, error) {
	le := binary.LittleEndian
	npages := int64(le.Uint32(data[12:]))
	nslots := npages*256 - 2
	if npages > 2048 || 32+16*nslots > int64(len(data)) {
		return nil, nil, corrupt("%d slot pages do not fit in %d bytes", npages, len(data))
	}
	var out []rpmHeader
	var bad recordErrors
	for i := range nslots {
		slot := data[32+16*i:]
		if le.Uint32(slot) != 'S'|'l'<<8|'o'<<16|'t'<<24 {
			bad.add(0, "slot %d has no slot magic", i)
			continue
		}
		pkg := le.Uint32(slot[4:])
		if pkg == 0 {
			continue
		}
		off := int64(le.Uint32(slot[8:])) * 16
		if off+16 > int64(len(data)) {
			bad.add(0, "slot %d points past the end of the file", i)
			continue
		}
		blob := data[off:]
		n := int64(le.Uint32(blob[12:]))
		if le.Uint32(blob) != 'B'|'l'<<8|'b'<<16|'S'<<24 || le.Uint32(blob[4:]) != pkg || off+16+n > int64(len(data)) {
			bad.add(0, "slot %d points to a bad blob", i)
			continue
		}
		where := fmt.Sprintf("package %d (slot %d)", pkg, i)
		if err := checkRPMHeader(blob[16 : 16+n]); err != nil {
			bad.add(0, "%s: %v", where, err)
			continue
		}
		out = append(out, rpmHeader{where, blob[16 : 16+n]})
	}
	return out, bad, nil
}

// bdbRPMHeaders walks a Berkeley DB hash file: the metadata page, then every
// hash page and, for each of its values stored off-page, the chain of
// overflow pages that holds the header blob. Each overflow page may serve
// one chain only, so the walk reads each page at most once.
func bdbRPMHeaders(data []byte) ([]rpmHeader, recordErrors, error) {
	var order binary.ByteOrder = binary.LittleEndian
	if order.Uint32(data[12:]) == 0x61150600 {
		order = binary.BigEndian
	}
	pageSize := int64(order.Uint32(data[20:]))
	if order.Uint32(data[12:]) != 0x00061561 || data[24] != 0 || data[25] != 8 ||
		pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil, nil, corrupt("not a Berkeley DB hash file")
	}
	var out []rpmHeader
	var bad recordErrors
	lastPage := int64(order.Uint32(data[32:]))
	used := map[uint32]bool{}
	for pageNo := int64(0); pageNo <= lastPage && (pageNo+1)*pageSize <= int64(len(data)); pageNo++ {
		page := data[pageNo*pageSize : (pageNo+1)*pageSize]
		if page[25] != 2 && page[25] != 13 { // hash pages, unsorted and sorted
			continue
		}
		entries := int64(order.Uint16(page[20:]))
		if entries%2 != 0 || 26+2*entries > min(pageSize, 65535) {
			bad.add(0, "page %d: %d entries do not fit the page", pageNo, entries)
			continue
		}
	values:
		for i := int64(1); i < entries; i += 2 { // keys and values alternate; values only
			where := fmt.Sprintf("page %d entry %d", pageNo, i)
			at := int64(order.Uint16(page[26+2*i:]))
			if at >= pageSize {
				bad.add(0, "%s points past the page", where)
				continue
			}
			if page[at] != 3 { // only off-page values hold packages
				continue
			}
			if at+12 > min(pageSize, 65535) {
				bad.add(0, "%s points past the page", where)
				continue
			}
			var blob []byte
			for next := order.Uint32(page[at+4:]); next != 0; {
				start := int64(uint32(pageSize) * next) // go-rpmdb's 32-bit arithmetic
				if start+pageSize > int64(len(data)) {
					bad.add(0, "%s: overflow page %d is past the end of the file", where, next)
					continue values
				}
				ov := data[start : start+pageSize]
				if ov[25] != 7 || used[next] {
					bad.add(0, "%s: page %d is not a free overflow page", where, next)
					continue values
				}
				used[next] = true
				if next = order.Uint32(ov[16:]); next != 0 {
					blob = append(blob, ov[26:]...)
					continue
				}
				free := int64(order.Uint16(ov[22:]))
				if 26+free > min(pageSize, 65535) {
					bad.add(0, "%s: overflow data runs past its page", where)
					continue values
				}
				blob = append(blob, ov[26:26+free]...)
			}
			if err := checkRPMHeader(blob); err != nil {
				bad.add(0, "%s: %v", where, err)
				continue
			}
			out = append(out, rpmHeader{where, blob})
		}
	}
	return out, bad, nil
}

// sqliteRPMHeaders reads every header blob of rpmdb.sqlite (and its
// write-ahead log, beside it).
func sqliteRPMHeaders(file string) ([]rpmHeader, recordErrors, error) {
	db, err := sql.Open("sqlite", file)
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	rows, err := db.Query("SELECT hnum, blob FROM Packages")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errRPMDBCorrupt, err)
	}
	defer rows.Close()
	var out []rpmHeader
	var bad recordErrors
	for rows.Next() {
		var hnum int64
		var blob []byte
		if err := rows.Scan(&hnum, &blob); err != nil {
			bad.add(0, "row %d: %v", hnum, err)
			continue
		}
		where := fmt.Sprintf("package %d", hnum)
		if err := checkRPMHeader(blob); err != nil {
			bad.add(0, "%s: %v", where, err)
			continue
		}
		out = append(out, rpmHeader{where, blob})
	}
	if err := rows.Err(); err != nil {
		if len(out) == 0 && len(bad) == 0 {
			return nil, nil, fmt.Errorf("%w: %v", errRPMDBCorrupt, err)
		}
		bad.add(0, "after %d packages: %v", len(out)+len(bad), err)
	}
	return out, bad, nil
}
