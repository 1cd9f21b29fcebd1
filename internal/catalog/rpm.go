package catalog

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	// The "sqlite" driver go-rpmdb opens rpmdb.sqlite with. Not
	// glebarez/go-sqlite, which go-rpmdb's own tests use: it registers the
	// same driver name, and internal/vulndb links modernc.org/sqlite.
	_ "modernc.org/sqlite"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// rpmDBNames are the files of rpm's three database backends, newest first:
// SQLite (rpm 4.16+: Fedora 33+, RHEL 9), NDB (SUSE) and Berkeley DB.
var rpmDBNames = []string{"rpmdb.sqlite", "Packages.db", "Packages"}

// rpmCataloger reads the rpm database in /var/lib/rpm or, where newer
// distributions keep it, /usr/lib/sysimage/rpm.
func rpmCataloger() Cataloger {
	return fileCataloger{
		name:  "rpm-db-cataloger",
		match: isRPMDatabase,
		parse: parseRPMDB,
	}
}

func isRPMDatabase(p string) bool {
	dir, base := path.Split(p)
	return (dir == "/var/lib/rpm/" || dir == "/usr/lib/sysimage/rpm/") && slices.Contains(rpmDBNames, base)
}

func parseRPMDB(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	// A database left behind by a backend conversion is stale: rpm reads
	// the newest backend's file.
	for _, newer := range rpmDBNames[:slices.Index(rpmDBNames, path.Base(n.Path))] {
		if m, err := in.FS.Lstat(path.Join(path.Dir(n.Path), newer)); err == nil && m.IsRegular() {
			return nil, nil
		}
	}
	var wal []byte
	if w, err := in.FS.Lstat(n.Path + "-wal"); err == nil && w.IsRegular() && w.Size > 0 {
		if wal, err = in.Read(w); err != nil {
			in.Warnf("rpm-db-cataloger: ignoring %s: %v", w.Path, err)
		}
	}
	infos, err := readRPMDB(in.TempDir, path.Base(n.Path), data, wal)
	if err != nil {
		return nil, err
	}
	key := func(p *rpmdb.PackageInfo) string { return p.Name + "=" + rpmVersion(p) + "." + p.Arch }
	introduced := olderDatabaseLayers(in, n, recordKeys(func(data []byte) ([]*rpmdb.PackageInfo, error) {
		return readRPMDB(in.TempDir, path.Base(n.Path), data, nil)
	}, key))
	var out []sbom.Package
	for _, p := range infos {
		if p.Name == "" || p.Version == "" || p.Name == "gpg-pubkey" {
			continue // gpg-pubkey "packages" are the imported signing keys
		}
		out = append(out, rpmPackage(in, p, in.Location(n), introduced(key(p))))
	}
	return out, nil
}

// rpmVersion is [EPOCH:]VERSION-RELEASE, as rpm -q prints it with %{EVR}.
func rpmVersion(p *rpmdb.PackageInfo) string {
	v := p.Version
	if p.Release != "" {
		v += "-" + p.Release
	}
	if e := p.EpochNum(); e > 0 {
		v = strconv.Itoa(e) + ":" + v
	}
	return v
}

func rpmPackage(in *Input, p *rpmdb.PackageInfo, loc sbom.Location, layer string) sbom.Package {
	vr := p.Version
	if p.Release != "" {
		vr += "-" + p.Release
	}
	src := &sbom.SourcePackage{Name: p.Name, Version: vr}
	if name, version, ok := parseSourceRPM(p.SourceRpm); ok {
		src = &sbom.SourcePackage{Name: name, Version: version}
	}
	epoch := ""
	if e := p.EpochNum(); e > 0 {
		epoch = strconv.Itoa(e)
	}
	pkg := sbom.Package{
		Name:    p.Name,
		Version: rpmVersion(p),
		Type:    sbom.TypeRPM,
		PURL: purl("rpm", distroNamespace(in.Distro, ""), p.Name, vr,
			"arch", p.Arch, "epoch", epoch, "distro", distroQualifier(in.Distro), "upstream", p.SourceRpm),
		Source:    src,
		Arch:      p.Arch,
		Locations: []sbom.Location{loc},
		Layer:     layer,
	}
	if p.License != "" && p.License != "(none)" {
		pkg.Licenses = []string{p.License} // an expression, "GPLv2+ and LGPLv2+" or SPDX
	}
	if p.Modularitylabel != "" {
		pkg.Metadata = map[string]string{"modularityLabel": p.Modularitylabel}
	}
	return pkg
}

// parseSourceRPM splits "openssl-3.0.7-1.el9.src.rpm" into "openssl" and
// "3.0.7-1.el9".
func parseSourceRPM(s string) (name, version string, ok bool) {
	s, ok = strings.CutSuffix(s, ".src.rpm")
	if !ok {
		if s, ok = strings.CutSuffix(s, ".nosrc.rpm"); !ok {
			return "", "", false
		}
	}
	r := strings.LastIndexByte(s, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(s[:r], '-')
	if v <= 0 || v+1 == r || r+1 == len(s) {
		return "", "", false
	}
	return s[:v], s[v+1:], true
}

// readRPMDB copies a database (and the write-ahead log of an SQLite one)
// into a new temporary directory, since go-rpmdb reads only from a path,
// checks it, and lists its packages.
func readRPMDB(tempDir, base string, data, wal []byte) ([]*rpmdb.PackageInfo, error) {
	if err := checkRPMDB(data); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempDir, "bulwark-rpmdb-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, base)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return nil, err
	}
	if bytes.HasPrefix(data, sqliteMagic) {
		if len(wal) > 0 {
			if err := os.WriteFile(file+"-wal", wal, 0o600); err != nil {
				return nil, err
			}
		}
		if err := checkRPMSQLite(file); err != nil {
			return nil, err
		}
	}
	return listRPMPackages(file)
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

// go-rpmdb reads the Berkeley DB and NDB files on a goroutine of its own,
// where a panic cannot be recovered, and trusts their offsets and page links
// (a page that is not an overflow page, or a cycle of them, makes it loop
// for ever). checkRPMDB walks the file first as go-rpmdb will, and refuses
// what would make it fail that way. It also bounds each header blob by its
// own length, as go-rpmdb allocates what the header's counts ask for.

var (
	sqliteMagic     = []byte("SQLite format 3\x00")
	errRPMDBCorrupt = errors.New("rpm database is corrupt")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRPMDBCorrupt, fmt.Sprintf(format, args...))
}

func checkRPMDB(data []byte) error {
	switch {
	case bytes.HasPrefix(data, sqliteMagic):
		return nil // checked through SQLite, once on disk
	case len(data) < 512:
		return corrupt("%d bytes is too short", len(data))
	case binary.LittleEndian.Uint32(data) == 'R'|'p'<<8|'m'<<16|'P'<<24 &&
		binary.LittleEndian.Uint32(data[4:]) == 0 && binary.LittleEndian.Uint32(data[12:]) != 0:
		return checkNDB(data)
	default:
		return checkBDB(data)
	}
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

// checkNDB walks an NDB Packages.db: a 32-byte header, slot pages of 16-byte
// slots, and for each used slot a blob header and the header blob.
func checkNDB(data []byte) error {
	le := binary.LittleEndian
	npages := int64(le.Uint32(data[12:]))
	if npages > 2048 {
		return nil // go-rpmdb refuses it
	}
	nslots := npages*256 - 2
	if 32+16*nslots > int64(len(data)) {
		return corrupt("%d slot pages do not fit in %d bytes", npages, len(data))
	}
	for i := range nslots {
		slot := data[32+16*i:]
		if le.Uint32(slot) != 'S'|'l'<<8|'o'<<16|'t'<<24 {
			return corrupt("slot %d has no slot magic", i)
		}
		pkg := le.Uint32(slot[4:])
		if pkg == 0 {
			continue
		}
		off := int64(le.Uint32(slot[8:])) * 16
		if off+16 > int64(len(data)) {
			return corrupt("slot %d points past the end of the file", i)
		}
		blob := data[off:]
		n := int64(le.Uint32(blob[12:]))
		if le.Uint32(blob) != 'B'|'l'<<8|'b'<<16|'S'<<24 || le.Uint32(blob[4:]) != pkg || off+16+n > int64(len(data)) {
			return corrupt("slot %d points to a bad blob", i)
		}
		if err := checkRPMHeader(blob[16 : 16+n]); err != nil {
			return err
		}
	}
	return nil
}

// checkBDB walks a Berkeley DB hash file: the metadata page, then every hash
// page and, for each of its values stored off-page, the chain of overflow
// pages that holds the header blob. Each overflow page may serve one chain
// only, so the walk, like go-rpmdb's, reads each page at most once.
func checkBDB(data []byte) error {
	var order binary.ByteOrder = binary.LittleEndian
	if order.Uint32(data[12:]) == 0x61150600 {
		order = binary.BigEndian
	}
	pageSize := int64(order.Uint32(data[20:]))
	if order.Uint32(data[12:]) != 0x00061561 || data[24] != 0 || data[25] != 8 ||
		pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil // go-rpmdb refuses it
	}
	lastPage := int64(order.Uint32(data[32:]))
	used := map[uint32]bool{}
	for pageNo := int64(0); pageNo <= lastPage && (pageNo+1)*pageSize <= int64(len(data)); pageNo++ {
		page := data[pageNo*pageSize : (pageNo+1)*pageSize]
		if page[25] != 2 && page[25] != 13 { // hash pages, unsorted and sorted
			continue
		}
		entries := int64(order.Uint16(page[20:]))
		if entries%2 != 0 {
			return nil // go-rpmdb refuses it
		}
		if 26+2*entries > min(pageSize, 65535) {
			return corrupt("page %d: %d entries overflow the page", pageNo, entries)
		}
		for i := int64(1); i < entries; i += 2 { // keys and values alternate; values only
			at := int64(order.Uint16(page[26+2*i:]))
			if at >= pageSize {
				return corrupt("page %d: entry %d points past the page", pageNo, i)
			}
			if page[at] != 3 { // only off-page values hold packages
				continue
			}
			if at+12 > min(pageSize, 65535) {
				return corrupt("page %d: entry %d points past the page", pageNo, i)
			}
			var blob []byte
			for next := order.Uint32(page[at+4:]); next != 0; {
				start := int64(uint32(pageSize) * next) // go-rpmdb's 32-bit arithmetic
				if start+pageSize > int64(len(data)) {
					return corrupt("page %d: overflow page %d is past the end of the file", pageNo, next)
				}
				ov := data[start : start+pageSize]
				if ov[25] != 7 || used[next] {
					return corrupt("page %d: page %d is not a free overflow page", pageNo, next)
				}
				used[next] = true
				if next = order.Uint32(ov[16:]); next != 0 {
					blob = append(blob, ov[26:]...)
					continue
				}
				free := int64(order.Uint16(ov[22:]))
				if 26+free > min(pageSize, 65535) {
					return corrupt("page %d: overflow data runs past its page", pageNo)
				}
				blob = append(blob, ov[26:26+free]...)
			}
			if err := checkRPMHeader(blob); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRPMSQLite reads every header blob of rpmdb.sqlite, so that a
// database go-rpmdb could not read fails here, before go-rpmdb's reader
// goroutine is left waiting to report a second error that nobody reads.
func checkRPMSQLite(file string) error {
	db, err := sql.Open("sqlite", file)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query("SELECT blob FROM Packages")
	if err != nil {
		return fmt.Errorf("%w: %v", errRPMDBCorrupt, err)
	}
	defer rows.Close()
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return fmt.Errorf("%w: %v", errRPMDBCorrupt, err)
		}
		if err := checkRPMHeader(blob); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %v", errRPMDBCorrupt, err)
	}
	return nil
}
