package catalog

import (
	"bytes"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func apkCataloger() Cataloger {
	return fileCataloger{
		name:  "apk-db-cataloger",
		match: func(p string) bool { return p == "/lib/apk/db/installed" },
		parse: parseAPKInstalled,
	}
}

// parseAPKInstalled parses Alpine's installed database: "K:value" lines,
// packages separated by blank lines (P name, V version, A arch, o origin,
// L license).
func parseAPKInstalled(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	records, err := parseAPKRecords(data)
	bad, _ := err.(recordErrors)
	introduced := olderDatabaseLayers(in, n, recordKeys(parseAPKRecords, func(r controlStanza) string {
		return r.fields["P"] + "=" + r.fields["V"]
	}))
	var out []sbom.Package
	for _, st := range records {
		r := st.fields
		name, version := r["P"], r["V"]
		if name == "" || version == "" {
			bad.add(st.line, "a record without a P (name) or V (version) line")
			continue
		}
		origin := r["o"]
		if origin == "" {
			origin = name
		}
		p := sbom.Package{
			Name:      name,
			Version:   version,
			Type:      sbom.TypeAPK,
			Arch:      r["A"],
			Source:    &sbom.SourcePackage{Name: origin, Version: version},
			Locations: []sbom.Location{in.Location(n)},
			Layer:     introduced(name + "=" + version),
		}
		if l := r["L"]; l != "" {
			p.Licenses = splitLicenseExpr(l)
		}
		p.PURL = purl("apk", distroNamespace(in.Distro, "alpine"), name, version, "arch", p.Arch, "distro", distroQualifier(in.Distro), "upstream", origin)
		out = append(out, p)
	}
	return out, bad.err()
}

// parseAPKRecords reads the records of the installed database. A line that
// is not "K:value" is skipped and reported in the recordErrors returned
// beside the records: it costs at most its own record.
func parseAPKRecords(data []byte) ([]controlStanza, error) {
	var out []controlStanza
	var bad recordErrors
	cur := controlStanza{}
	lineNo := 0
	for raw := range bytes.Lines(data) {
		lineNo++
		line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		if strings.TrimSpace(line) == "" {
			if len(cur.fields) > 0 {
				out = append(out, cur)
			}
			cur = controlStanza{}
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			bad.add(lineNo, "not a \"K:value\" line")
			continue
		}
		if cur.fields == nil {
			cur = controlStanza{line: lineNo, fields: map[string]string{}}
		}
		k := line[:1]
		if _, seen := cur.fields[k]; !seen { // file lists (R:, Z:) repeat; keep the first
			cur.fields[k] = line[2:]
		}
	}
	if len(cur.fields) > 0 {
		out = append(out, cur)
	}
	return out, bad.err()
}
