package catalog

import (
	"bufio"
	"bytes"
	"errors"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// pythonCataloger reads installed Python distributions: the core metadata
// file that pip and setuptools write beside the code, NAME.dist-info/METADATA
// (wheels), NAME.egg-info/PKG-INFO (setuptools) and NAME.egg-info as a single
// file (distutils, as Debian's python3-* packages still ship).
func pythonCataloger() Cataloger {
	return fileCataloger{
		name:  "python-installed-package-cataloger",
		match: isPythonMetadata,
		parse: parsePythonMetadata,
	}
}

func isPythonMetadata(p string) bool {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case base == "METADATA":
		return strings.HasSuffix(dir, ".dist-info")
	case base == "PKG-INFO":
		return strings.HasSuffix(dir, ".egg-info")
	default:
		return strings.HasSuffix(base, ".egg-info")
	}
}

func parsePythonMetadata(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	p, err := pythonPackage(data)
	if err != nil {
		return nil, err
	}
	p.Locations = []sbom.Location{in.Location(n)}
	return []sbom.Package{p}, nil
}

// pythonPackage reads the header block of a core metadata file (the
// description that follows the first blank line is not read).
func pythonPackage(data []byte) (sbom.Package, error) {
	h, err := parseRFC822Headers(data)
	if err != nil {
		return sbom.Package{}, err
	}
	name, version := h.first("name"), h.first("version")
	if name == "" || version == "" {
		return sbom.Package{}, errors.New("no Name or Version header")
	}
	return sbom.Package{
		Name:     name,
		Version:  version,
		Type:     sbom.TypePython,
		PURL:     purl("pypi", "", normalizePythonName(name), version),
		Licenses: pythonLicenses(h),
	}, nil
}

// pythonLicenses prefers, in order, the SPDX License-Expression (core
// metadata 2.4), a short one-line License field, and the license trove
// classifiers. A License field that holds the whole license text, or says
// UNKNOWN, is not a license name.
func pythonLicenses(h rfc822Headers) []string {
	if expr := h.first("license-expression"); expr != "" {
		return []string{expr}
	}
	if l := h.first("license"); l != "" && !strings.Contains(l, "\n") && len(l) <= 80 && !strings.EqualFold(l, "UNKNOWN") {
		return []string{l}
	}
	var out []string
	for _, c := range h["classifier"] {
		parts := strings.Split(c, "::")
		if len(parts) < 2 || strings.TrimSpace(parts[0]) != "License" {
			continue
		}
		last := strings.TrimSpace(parts[len(parts)-1])
		if last == "" || last == "OSI Approved" {
			continue
		}
		if id, ok := pythonClassifierSPDX[last]; ok {
			last = id
		}
		if !slices.Contains(out, last) {
			out = append(out, last)
		}
	}
	return out
}

// pythonClassifierSPDX maps the license classifiers whose meaning is not in
// doubt to SPDX identifiers; others ("BSD License") are kept as written.
var pythonClassifierSPDX = map[string]string{
	"MIT License":                                             "MIT",
	"Apache Software License":                                 "Apache-2.0",
	"ISC License (ISCL)":                                      "ISC",
	"Python Software Foundation License":                      "PSF-2.0",
	"Mozilla Public License 2.0 (MPL 2.0)":                    "MPL-2.0",
	"GNU General Public License v2 (GPLv2)":                   "GPL-2.0-only",
	"GNU General Public License v2 or later (GPLv2+)":         "GPL-2.0-or-later",
	"GNU General Public License v3 (GPLv3)":                   "GPL-3.0-only",
	"GNU General Public License v3 or later (GPLv3+)":         "GPL-3.0-or-later",
	"GNU Lesser General Public License v2 (LGPLv2)":           "LGPL-2.0-only",
	"GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
	"GNU Lesser General Public License v3 (LGPLv3)":           "LGPL-3.0-only",
	"GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
	"GNU Affero General Public License v3":                    "AGPL-3.0-only",
	"GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
	"Eclipse Public License 2.0 (EPL-2.0)":                    "EPL-2.0",
	"Boost Software License 1.0 (BSL-1.0)":                    "BSL-1.0",
	"The Unlicense (Unlicense)":                               "Unlicense",
	"zlib/libpng License":                                     "Zlib",
	"Historical Permission Notice and Disclaimer (HPND)":      "HPND",
	"BSD Zero Clause License (0BSD)":                          "0BSD",
}

var pythonNameRuns = regexp.MustCompile(`[-_.]+`)

// normalizePythonName is PEP 503's normalized name, the purl pypi name.
func normalizePythonName(name string) string {
	return pythonNameRuns.ReplaceAllString(strings.ToLower(name), "-")
}

// rfc822Headers holds the header fields of an RFC 822 style block, keyed by
// lower-case field name; a field may repeat (Classifier).
type rfc822Headers map[string][]string

func (h rfc822Headers) first(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// parseRFC822Headers reads "Field: value" lines up to the first empty line.
// A line that starts with a space or tab, even one of only blanks, continues
// the previous value (as Python's email parser reads it). The
// first line that is neither ends the headers too (a body with no blank line
// before it), unless no field has been read yet.
func parseRFC822Headers(data []byte) (rfc822Headers, error) {
	h := rfc822Headers{}
	var lastKey string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if lastKey == "" {
				return nil, &RecordError{Line: lineNo, Err: errors.New("continuation line outside a field")}
			}
			vals := h[lastKey]
			vals[len(vals)-1] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			if len(h) == 0 {
				return nil, &RecordError{Line: lineNo, Err: errors.New("not a \"Field: value\" line")}
			}
			break
		}
		lastKey = strings.ToLower(k)
		h[lastKey] = append(h[lastKey], strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return nil, &RecordError{Line: lineNo + 1, Err: err}
	}
	return h, nil
}
