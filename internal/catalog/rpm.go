package catalog

import (
	"fmt"
	"path"
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
			in.Problem("rpm-db-cataloger", w, 0, fmt.Errorf("ignoring the write-ahead log: %w", err))
		}
	}
	infos, err := readRPMDB(in.TempDir, path.Base(n.Path), data, wal)
	bad, partial := err.(recordErrors)
	if err != nil && !partial {
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
	return out, bad.err()
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
