package catalog

import (
	"bufio"
	"bytes"
	"fmt"
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
	if err != nil {
		return nil, err
	}
	introduced := olderDatabaseLayers(in, n, recordKeys(parseAPKRecords, func(r map[string]string) string {
		return r["P"] + "=" + r["V"]
	}))
	var out []sbom.Package
	for _, r := range records {
		name, version := r["P"], r["V"]
		if name == "" || version == "" {
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
	return out, nil
}

func parseAPKRecords(data []byte) ([]map[string]string, error) {
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return nil, fmt.Errorf("line %d: not a \"K:value\" line", lineNo)
		}
		k := line[:1]
		if _, seen := cur[k]; !seen { // file lists (R:, Z:) repeat; keep the first
			cur[k] = line[2:]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}
