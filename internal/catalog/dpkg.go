package catalog

import (
	"bytes"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func dpkgCataloger() Cataloger {
	return fileCataloger{
		name:  "dpkg-db-cataloger",
		match: func(p string) bool { return p == "/var/lib/dpkg/status" },
		parse: parseDpkgStatus,
	}
}

// dpkgDistrolessCataloger reads distroless images' one-file-per-package
// database, /var/lib/dpkg/status.d/NAME.
func dpkgDistrolessCataloger() Cataloger {
	return fileCataloger{
		name: "dpkg-distroless-cataloger",
		match: func(p string) bool {
			return path.Dir(p) == "/var/lib/dpkg/status.d" && !strings.Contains(path.Base(p), ".")
		},
		parse: parseDpkgStatus,
	}
}

// parseDpkgStatus parses a dpkg status file. Each package is attributed to
// the oldest layer from which every later version of the database lists it,
// so an apt-get install in the application layer is told apart from the base.
// A damaged stanza costs that stanza only.
func parseDpkgStatus(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	stanzas, err := parseControl(data)
	bad, _ := err.(recordErrors)
	introduced := olderDatabaseLayers(in, n, recordKeys(parseControl, func(s controlStanza) string {
		return s.fields["Package"] + "=" + s.fields["Version"]
	}))
	var out []sbom.Package
	for _, st := range stanzas {
		s := st.fields
		name, version := s["Package"], s["Version"]
		switch {
		case !dpkgInstalled(s["Status"]):
			continue
		case name == "":
			bad.add(st.line, "a record without a Package field")
			continue
		case version == "":
			bad.add(st.line, "package %s has no Version field", name)
			continue
		}
		arch := s["Architecture"]
		srcName, srcVersion := name, version
		if src := s["Source"]; src != "" {
			srcName = src
			if i := strings.Index(src, " ("); i > 0 && strings.HasSuffix(src, ")") {
				srcName, srcVersion = src[:i], src[i+2:len(src)-1]
			}
		}
		p := sbom.Package{
			Name:      name,
			Version:   version,
			Type:      sbom.TypeDeb,
			Arch:      arch,
			Source:    &sbom.SourcePackage{Name: srcName, Version: srcVersion},
			Locations: []sbom.Location{in.Location(n)},
			Layer:     introduced(name + "=" + version),
		}
		upstream := ""
		if srcName != name || srcVersion != version {
			upstream = srcName
			if srcVersion != version {
				upstream += "@" + srcVersion
			}
		}
		p.PURL = purl("deb", distroNamespace(in.Distro, "debian"), name, version, "arch", arch, "distro", distroQualifier(in.Distro), "upstream", upstream)
		p.Licenses, p.Locations = dpkgLicenses(in, name, p.Locations)
		out = append(out, p)
	}
	return out, bad.err()
}

// dpkgInstalled reads the Status field ("install ok installed"); distroless
// databases have none and list only installed packages.
func dpkgInstalled(status string) bool {
	if status == "" {
		return true
	}
	f := strings.Fields(status)
	return len(f) == 3 && (f[2] == "installed" || f[2] == "half-configured")
}

// dpkgLicenses reads the short license names of a machine-readable (DEP-5)
// /usr/share/doc/NAME/copyright, adding the file to the locations.
func dpkgLicenses(in *Input, name string, locs []sbom.Location) ([]string, []sbom.Location) {
	n, err := in.FS.Stat("/usr/share/doc/" + name + "/copyright")
	if err != nil || !n.IsRegular() {
		return nil, locs
	}
	data, err := in.Read(n)
	if err != nil {
		return nil, locs
	}
	var lics []string
	add := func(l string) {
		if l != "" && !slices.Contains(lics, l) {
			lics = append(lics, l)
		}
	}
	for line := range bytes.Lines(data) {
		if rest, ok := bytes.CutPrefix(line, []byte("License:")); ok {
			for _, l := range splitLicenseExpr(string(bytes.TrimSpace(rest))) {
				add(l)
			}
		}
		for _, m := range commonLicenseRef.FindAllSubmatch(line, -1) {
			add(strings.TrimRight(string(m[1]), ".-"))
		}
	}
	slices.Sort(lics)
	return lics, append(locs, in.Location(n))
}

// commonLicenseRef finds references to the license texts Debian ships, as
// in "can be found in /usr/share/common-licenses/GPL-2".
var commonLicenseRef = regexp.MustCompile(`/usr/share/common-licenses/([A-Za-z0-9.+-]+)`)

// splitLicenseExpr splits a DEP-5 license line ("GPL-2+ or Artistic") into
// its short names; exceptions ("GPL-3+ with Bison exception") are dropped.
func splitLicenseExpr(s string) []string {
	if i := strings.Index(strings.ToLower(s), " with "); i > 0 {
		s = s[:i]
	}
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '(' || r == ')' }) {
		switch strings.ToLower(f) {
		case "or", "and", "with", "":
			continue
		}
		out = append(out, f)
	}
	return out
}

// olderDatabaseLayers returns a function that tells, for a package key, the
// diffID of the oldest layer such that this and every newer version of the
// database file lists the key. keys parses one older version into its keys.
func olderDatabaseLayers(in *Input, n *layerfs.Node, keys func([]byte) map[string]bool) func(string) string {
	type version struct {
		layer string
		keys  map[string]bool
	}
	var older []version
	for p := n.Prev(); p != nil; p = p.Prev() {
		data, err := in.Read(p)
		if err != nil {
			break
		}
		older = append(older, version{layer: in.FS.LayerID(p.Layer), keys: keys(data)})
	}
	top := in.FS.LayerID(n.Layer)
	return func(key string) string {
		layer := top
		for _, v := range older {
			if !v.keys[key] {
				break
			}
			layer = v.layer
		}
		return layer
	}
}

// recordKeys turns a database parser into the keys function of
// olderDatabaseLayers: the records of an older copy that could be read
// (damaged ones are left out), none when the copy does not parse at all.
func recordKeys[T any](parse func([]byte) ([]T, error), key func(T) string) func([]byte) map[string]bool {
	return func(data []byte) map[string]bool {
		records, err := parse(data)
		if _, partial := err.(recordErrors); err != nil && !partial {
			return nil
		}
		keys := make(map[string]bool, len(records))
		for _, r := range records {
			keys[key(r)] = true
		}
		return keys
	}
}

// controlStanza is one record of a control file: its fields and the number
// of its first line.
type controlStanza struct {
	line   int
	fields map[string]string
}

// parseControl parses Debian control-file stanzas ("Key: value", with
// continuation lines starting with a space or tab, stanzas separated by blank
// lines). A line that is neither is skipped with its continuation lines and
// reported in the recordErrors returned beside the stanzas: it costs at most
// its own stanza (the caller drops a stanza left without a name or version).
func parseControl(data []byte) ([]controlStanza, error) {
	var out []controlStanza
	var bad recordErrors
	cur := controlStanza{}
	lastKey, skipping := "", false
	lineNo := 0
	for raw := range bytes.Lines(data) {
		lineNo++
		line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		switch {
		case strings.TrimSpace(line) == "":
			if len(cur.fields) > 0 {
				out = append(out, cur)
			}
			cur, lastKey, skipping = controlStanza{}, "", false
		case line[0] == ' ' || line[0] == '\t':
			switch {
			case skipping:
			case lastKey == "":
				bad.add(lineNo, "continuation line outside a field")
				skipping = true
			default:
				cur.fields[lastKey] += "\n" + strings.TrimSpace(line)
			}
		case line[0] == '#':
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				bad.add(lineNo, "not a \"Field: value\" line")
				lastKey, skipping = "", true
				continue
			}
			if cur.fields == nil {
				cur = controlStanza{line: lineNo, fields: map[string]string{}}
			}
			lastKey, skipping = k, false
			cur.fields[k] = strings.TrimSpace(v)
		}
	}
	if len(cur.fields) > 0 {
		out = append(out, cur)
	}
	return out, bad.err()
}
