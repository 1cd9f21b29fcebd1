package catalog

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// rpmFixture is the NDB database of a SLES 15 SP3 image (see
// testdata/rpm/NOTICE).
const rpmFixture = "testdata/rpm/usr/lib/sysimage/rpm/Packages.db"

var slesDistro = &sbom.Distro{ID: "sles", VersionID: "15.3"}

// slesPackages are a few of the fixture's 35 packages, as found at loc.
func slesPackages(loc string) map[string]sbom.Package {
	pkg := func(name, version, arch, purl, srcName, srcVersion, license string) sbom.Package {
		return sbom.Package{
			Name: name, Version: version, Type: sbom.TypeRPM, PURL: purl, Arch: arch,
			Source:    &sbom.SourcePackage{Name: srcName, Version: srcVersion},
			Licenses:  []string{license},
			Locations: []sbom.Location{{Path: loc}}, Cataloger: "rpm-db-cataloger",
		}
	}
	return map[string]sbom.Package{
		"bash": pkg("bash", "4.4-19.6.1", "x86_64",
			"pkg:rpm/sles/bash@4.4-19.6.1?arch=x86_64&distro=sles-15.3&upstream=bash-4.4-19.6.1.src.rpm",
			"bash", "4.4-19.6.1", "GPL-3.0-or-later"),
		"libreadline7": pkg("libreadline7", "7.0-19.6.1", "x86_64",
			"pkg:rpm/sles/libreadline7@7.0-19.6.1?arch=x86_64&distro=sles-15.3&upstream=bash-4.4-19.6.1.src.rpm",
			"bash", "4.4-19.6.1", "GPL-3.0-or-later"),
		"glibc": pkg("glibc", "2.31-9.3.2", "x86_64",
			"pkg:rpm/sles/glibc@2.31-9.3.2?arch=x86_64&distro=sles-15.3&upstream=glibc-2.31-9.3.2.src.rpm",
			"glibc", "2.31-9.3.2", "LGPL-2.1-or-later AND LGPL-2.1-or-later WITH GCC-exception-2.0 AND GPL-2.0-or-later"),
		"libstdc++6": pkg("libstdc++6", "11.2.1+git610-1.3.9", "x86_64",
			"pkg:rpm/sles/libstdc%2B%2B6@11.2.1%2Bgit610-1.3.9?arch=x86_64&distro=sles-15.3&upstream=gcc11-11.2.1%2Bgit610-1.3.9.src.rpm",
			"gcc11", "11.2.1+git610-1.3.9", "GPL-3.0-or-later WITH GCC-exception-3.1"),
		"ca-certificates-mozilla-prebuilt": pkg("ca-certificates-mozilla-prebuilt", "2.44-21.1", "noarch",
			"pkg:rpm/sles/ca-certificates-mozilla-prebuilt@2.44-21.1?arch=noarch&distro=sles-15.3&upstream=ca-certificates-mozilla-prebuilt-2.44-21.1.src.rpm",
			"ca-certificates-mozilla-prebuilt", "2.44-21.1", "MPL-2.0"),
	}
}

// assertSLESPackages checks that the fixture's 35 packages were all found,
// and a few of them field by field.
func assertSLESPackages(t *testing.T, got []sbom.Package, warnings []string, loc string) {
	t.Helper()
	if len(warnings) > 0 {
		t.Errorf("warnings: %q", warnings)
	}
	if len(got) != 35 {
		t.Errorf("got %d packages, want 35", len(got))
	}
	want := slesPackages(loc)
	for _, p := range got {
		if w, ok := want[p.Name]; ok {
			assertLangPackages(t, []sbom.Package{p}, []sbom.Package{w})
			delete(want, p.Name)
		}
	}
	for name := range want {
		t.Errorf("%s not found", name)
	}
}

func TestRPMCatalogerNDB(t *testing.T) {
	got, warnings := runLangFixtureMax(t, "testdata/rpm", slesDistro, 4<<20, rpmCataloger())
	assertSLESPackages(t, got, warnings, "/usr/lib/sysimage/rpm/Packages.db")
}

// fixtureBlobs returns the header blobs of the NDB fixture.
func fixtureBlobs(t testing.TB) [][]byte {
	t.Helper()
	data, err := os.ReadFile(rpmFixture)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	var blobs [][]byte
	for i := range int(le.Uint32(data[12:]))*256 - 2 {
		slot := data[32+16*i:]
		if le.Uint32(slot[4:]) == 0 {
			continue
		}
		off := int(le.Uint32(slot[8:])) * 16
		blobs = append(blobs, data[off+16:off+16+int(le.Uint32(data[off+12:]))])
	}
	return blobs
}

// makeBDB builds a Berkeley DB hash file as rpm writes Packages: a metadata
// page, one hash page whose values are stored off-page, and the chains of
// overflow pages that hold the blobs.
func makeBDB(blobs [][]byte) []byte {
	const ps = 4096
	le := binary.LittleEndian
	meta, hash := make([]byte, ps), make([]byte, ps)
	le.PutUint32(meta[12:], 0x00061561)
	le.PutUint32(meta[16:], 9)
	le.PutUint32(meta[20:], ps)
	meta[25] = 8
	le.PutUint32(hash[8:], 1)
	le.PutUint16(hash[20:], uint16(2*len(blobs)))
	hash[25] = 13
	pages := [][]byte{meta, hash}
	free := ps
	for i, blob := range blobs {
		free -= 5 // the key: H_KEYDATA and the package number
		hash[free] = 1
		le.PutUint32(hash[free+1:], uint32(i+1))
		le.PutUint16(hash[26+4*i:], uint16(free))
		free -= 12 // the value: H_OFFPAGE, first page, length
		hash[free] = 3
		le.PutUint32(hash[free+4:], uint32(len(pages)))
		le.PutUint32(hash[free+8:], uint32(len(blob)))
		le.PutUint16(hash[26+4*i+2:], uint16(free))
		for off := 0; off < len(blob); off += ps - 26 {
			page := make([]byte, ps)
			le.PutUint32(page[8:], uint32(len(pages)))
			page[25] = 7
			n := copy(page[26:], blob[off:])
			if off+n < len(blob) {
				le.PutUint32(page[16:], uint32(len(pages)+1))
			} else {
				le.PutUint16(page[22:], uint16(n))
			}
			pages = append(pages, page)
		}
	}
	le.PutUint32(meta[32:], uint32(len(pages)-1))
	return bytes.Join(pages, nil)
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRPMCatalogerBDB(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "var/lib/rpm/Packages"), makeBDB(fixtureBlobs(t)))
	got, warnings := runLangFixtureMax(t, root, slesDistro, 4<<20, rpmCataloger())
	assertSLESPackages(t, got, warnings, "/var/lib/rpm/Packages")
}

// TestRPMCatalogerSQLite writes an rpmdb.sqlite whose rows are still in the
// write-ahead log, beside a stale Berkeley DB Packages that lists nothing.
func TestRPMCatalogerSQLite(t *testing.T) {
	build := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	db, err := sql.Open("sqlite", build)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA journal_mode=WAL",
		"PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range fixtureBlobs(t) {
		if _, err := db.Exec("INSERT INTO Packages (blob) VALUES (?)", b); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(build + suffix)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "var/lib/rpm/rpmdb.sqlite"+suffix), data)
	}
	writeFile(t, filepath.Join(root, "var/lib/rpm/Packages"), []byte("stale"))

	got, warnings := runLangFixtureMax(t, root, slesDistro, 4<<20, rpmCataloger())
	assertSLESPackages(t, got, warnings, "/var/lib/rpm/rpmdb.sqlite")
}

func TestReadRPMDBCleansUp(t *testing.T) {
	data, err := os.ReadFile(rpmFixture)
	if err != nil {
		t.Fatal(err)
	}
	tempDir := t.TempDir()
	if _, err := readRPMDB(tempDir, "Packages.db", data, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := readRPMDB(tempDir, "Packages", []byte("corrupt"), nil); err == nil {
		t.Error("corrupt database: no error")
	}
	if left, _ := os.ReadDir(tempDir); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestRPMCatalogerTooLarge(t *testing.T) {
	got, warnings := runLangFixtureMax(t, "testdata/rpm", slesDistro, 1<<20, rpmCataloger())
	if len(got) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "larger than the configured limit") {
		t.Errorf("got %d packages and warnings %q, want none and one about the size limit", len(got), warnings)
	}
}

func TestRPMPackageEpochAndModularity(t *testing.T) {
	epoch := 1
	p := rpmPackage(&Input{Distro: &sbom.Distro{ID: "rhel", VersionID: "8.8"}}, &rpmdb.PackageInfo{
		Name: "perl-IO-Socket-SSL", Epoch: &epoch, Version: "2.066", Release: "4.module+el8.3.0+6446+594cad75", Arch: "noarch",
		SourceRpm: "perl-IO-Socket-SSL-2.066-4.module+el8.3.0+6446+594cad75.src.rpm", License: "(GPL+ or Artistic) and MPLv2.0",
		Modularitylabel: "perl-IO-Socket-SSL:2.066:8030020200430120526:466ee3c1",
	}, sbom.Location{Path: "/var/lib/rpm/Packages"}, "sha256:1")
	want := sbom.Package{
		Name: "perl-IO-Socket-SSL", Version: "1:2.066-4.module+el8.3.0+6446+594cad75", Type: sbom.TypeRPM, Arch: "noarch",
		PURL:      "pkg:rpm/rhel/perl-IO-Socket-SSL@2.066-4.module%2Bel8.3.0%2B6446%2B594cad75?arch=noarch&distro=rhel-8.8&epoch=1&upstream=perl-IO-Socket-SSL-2.066-4.module%2Bel8.3.0%2B6446%2B594cad75.src.rpm",
		Source:    &sbom.SourcePackage{Name: "perl-IO-Socket-SSL", Version: "2.066-4.module+el8.3.0+6446+594cad75"},
		Licenses:  []string{"(GPL+ or Artistic) and MPLv2.0"},
		Locations: []sbom.Location{{Path: "/var/lib/rpm/Packages"}}, Layer: "sha256:1",
		Metadata: map[string]string{"modularityLabel": "perl-IO-Socket-SSL:2.066:8030020200430120526:466ee3c1"},
	}
	assertLangPackages(t, []sbom.Package{p}, []sbom.Package{want})

	// No distro, no source rpm, no license.
	p = rpmPackage(&Input{}, &rpmdb.PackageInfo{Name: "local-tool", Version: "1.0", Release: "1", Arch: "x86_64", License: "(none)"}, sbom.Location{}, "")
	if p.PURL != "pkg:rpm/local-tool@1.0-1?arch=x86_64" || *p.Source != (sbom.SourcePackage{Name: "local-tool", Version: "1.0-1"}) || p.Licenses != nil {
		t.Errorf("got %+v", p)
	}
}

func TestParseSourceRPM(t *testing.T) {
	for in, want := range map[string][2]string{
		"openssl-3.0.7-1.el9.src.rpm":        {"openssl", "3.0.7-1.el9"},
		"gcc11-11.2.1+git610-1.3.9.src.rpm":  {"gcc11", "11.2.1+git610-1.3.9"},
		"python3-pip-21.2.3-6.el9.src.rpm":   {"python3-pip", "21.2.3-6.el9"},
		"nvidia-kmod-530.30-1.el9.nosrc.rpm": {"nvidia-kmod", "530.30-1.el9"},
		"openssl-3.0.7.src.rpm":              {"", ""},
		"-1-2.src.rpm":                       {"", ""},
		"a--2.src.rpm":                       {"", ""},
		"a-1-.src.rpm":                       {"", ""},
		"openssl-3.0.7-1.el9.x86_64.rpm":     {"", ""},
		"":                                   {"", ""},
	} {
		name, version, ok := parseSourceRPM(in)
		if name != want[0] || version != want[1] || ok != (want[0] != "") {
			t.Errorf("parseSourceRPM(%q) = %q, %q, %v, want %q, %q", in, name, version, ok, want[0], want[1])
		}
	}
}

func TestIsRPMDatabase(t *testing.T) {
	for p, want := range map[string]bool{
		"/var/lib/rpm/Packages":               true,
		"/var/lib/rpm/Packages.db":            true,
		"/var/lib/rpm/rpmdb.sqlite":           true,
		"/usr/lib/sysimage/rpm/rpmdb.sqlite":  true,
		"/usr/lib/sysimage/rpm/Packages":      true,
		"/var/lib/rpm/rpmdb.sqlite-wal":       false,
		"/var/lib/rpm/Name":                   false,
		"/home/user/var/lib/rpm/Packages":     false,
		"/var/lib/rpm/backup/Packages":        false,
		"/usr/lib/sysimage/rpm/rpmdb.sqlite2": false,
	} {
		if got := isRPMDatabase(p); got != want {
			t.Errorf("isRPMDatabase(%q) = %v, want %v", p, got, want)
		}
	}
}

// smallBlobs are the two smallest headers of the fixture, for fuzz seeds
// and corruption tests.
func smallBlobs(t testing.TB) [][]byte {
	blobs := slices.Clone(fixtureBlobs(t))
	slices.SortFunc(blobs, func(a, b []byte) int { return len(a) - len(b) })
	return blobs[:2]
}

// setFirstEntry changes the first index entry of type typ in a header blob,
// or the last entry when typ is 0xff.
func setFirstEntry(blob []byte, typ uint32, change func(entry []byte)) {
	il := int(binary.BigEndian.Uint32(blob))
	if typ == 0xff {
		change(blob[8+16*(il-1) : 8+16*il])
		return
	}
	for i := 1; i < il; i++ {
		if e := blob[8+16*i : 8+16*i+16]; binary.BigEndian.Uint32(e[4:]) == typ {
			change(e)
			return
		}
	}
	panic("no entry of that type")
}

// TestRPMDBDamagedHeaders corrupts databases in the ways that make go-rpmdb
// panic on its reader goroutine, loop for ever (or for hours), or allocate
// what a header claims, and checks that each damaged header is refused before
// go-rpmdb sees it, costing its own package only: the other package is still
// listed, and the damage is a record error. A file whose structure is gone
// ("whole") is an error of its own.
func TestRPMDBDamagedHeaders(t *testing.T) {
	le := binary.LittleEndian
	blobs := smallBlobs(t)
	bdb, ndb := makeBDB(blobs), makeNDB(blobs)
	const ps = 4096
	firstValue := int(le.Uint16(bdb[ps+26+2:])) // offset of blob 0's H_OFFPAGE item
	firstOverflow := int(le.Uint32(bdb[ps+firstValue+4:]))
	tests := []struct {
		name   string
		base   []byte
		mutate func([]byte)
	}{
		{"bdb: overflow chain reaches a page that is not an overflow page", bdb, func(b []byte) { b[firstOverflow*ps+25] = 0 }},
		{"bdb: overflow chain loops", bdb, func(b []byte) {
			le.PutUint32(b[firstOverflow*ps+16:], uint32(firstOverflow))
		}},
		{"bdb: two values share an overflow page", bdb, func(b []byte) {
			second := int(le.Uint16(b[ps+26+6:]))
			le.PutUint32(b[ps+second+4:], uint32(firstOverflow))
		}},
		{"bdb: value offset past the page", bdb, func(b []byte) { le.PutUint16(b[ps+26+2:], ps) }},
		{"bdb: entries overflow the page", bdb, func(b []byte) { le.PutUint16(b[ps+20:], 4000) }},
		{"bdb: overflow page past the end", bdb, func(b []byte) { le.PutUint32(b[ps+firstValue+4:], 1<<20) }},
		{"bdb: overflow data runs past its page", bdb, func(b []byte) {
			for p := firstOverflow; ; p++ {
				if le.Uint32(b[p*ps+16:]) == 0 {
					le.PutUint16(b[p*ps+22:], ps)
					return
				}
			}
		}},
		{"bdb: header announces more than it holds", bdb, func(b []byte) {
			binary.BigEndian.PutUint32(b[firstOverflow*ps+26:], 0x7fffffff)
		}},
		{"ndb: slot without magic", ndb, func(b []byte) { b[32+16*100] = 0 }},
		{"ndb: blob longer than the file", ndb, func(b []byte) {
			off := int(le.Uint32(b[32+8:])) * 16
			le.PutUint32(b[off+12:], 0xffffffff)
		}},
		{"ndb: blob of another package", ndb, func(b []byte) {
			off := int(le.Uint32(b[32+8:])) * 16
			le.PutUint32(b[off+4:], 7)
		}},
		{"ndb: slot pages past the end", ndb, func(b []byte) { le.PutUint32(b[12:], 2000) }},
		{"ndb: header announces more than it holds", ndb, func(b []byte) {
			off := int(le.Uint32(b[32+8:])) * 16
			binary.BigEndian.PutUint32(b[off+16+4:], 0x7fffffff)
		}},
		{"ndb: string array claims four billion strings", ndb, func(b []byte) {
			off := int(le.Uint32(b[32+8:])) * 16
			setFirstEntry(b[off+16:], 8, func(e []byte) { binary.BigEndian.PutUint32(e[12:], 0xffffffff) })
		}},
		{"ndb: header entries overlap", ndb, func(b []byte) {
			off := int(le.Uint32(b[32+8:])) * 16
			setFirstEntry(b[off+16:], 0xff, func(e []byte) { binary.BigEndian.PutUint32(e[8:], 0) })
		}},
		{"short", []byte("\x00\x00"), func([]byte) {}},
	}
	// packages still listed; -1: the whole file is refused
	keep := map[string]int{"ndb: slot without magic": 2, "bdb: entries overflow the page": 0, "ndb: slot pages past the end": -1, "short": -1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := slices.Clone(tt.base)
			tt.mutate(data)
			want, ok := keep[tt.name]
			if !ok {
				want = 1
			}
			pkgs, err := readRPMDB(t.TempDir(), "Packages", data, nil)
			bad, partial := err.(recordErrors)
			switch {
			case want < 0:
				if !errors.Is(err, errRPMDBCorrupt) || partial {
					t.Fatalf("readRPMDB: %v, want the whole file refused", err)
				}
			case !partial || len(bad) == 0:
				t.Fatalf("readRPMDB: %v, want a damaged record", err)
			case len(pkgs) != want:
				t.Errorf("readRPMDB: %d packages, want %d (%v)", len(pkgs), want, err)
			}
		})
	}
	for name, data := range map[string][]byte{"bdb": bdb, "ndb": ndb} {
		if pkgs, err := readRPMDB(t.TempDir(), "Packages", data, nil); err != nil || len(pkgs) != 2 {
			t.Errorf("%s: got %d packages, %v, want 2", name, len(pkgs), err)
		}
	}
}

func TestReadRPMDBSQLiteErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE Other (x)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	noTable, _ := os.ReadFile(file)
	if _, err := readRPMDB(t.TempDir(), "rpmdb.sqlite", noTable, nil); !errors.Is(err, errRPMDBCorrupt) {
		t.Errorf("no Packages table: %v, want a corrupt database error", err)
	}
	truncated := append([]byte(nil), noTable[:100]...)
	if _, err := readRPMDB(t.TempDir(), "rpmdb.sqlite", truncated, nil); err == nil {
		t.Errorf("truncated: no error")
	}
}

// FuzzCheckRPMDB feeds Berkeley DB and NDB files through the walk and each
// header that passes the check through go-rpmdb: nothing may panic or hang.
func FuzzCheckRPMDB(f *testing.F) {
	blobs := smallBlobs(f)
	f.Add(makeBDB(blobs))
	f.Add(makeNDB(blobs))
	f.Add(makeBDB(blobs[:1]))
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.HasPrefix(data, sqliteMagic) {
			return // SQLite's own checks guard that format
		}
		done := make(chan error, 1)
		go func() {
			_, err := readRPMDB(t.TempDir(), "Packages", data, nil)
			done <- err
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("readRPMDB did not return")
		}
	})
}
