package osv

import (
	"strings"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// Ecosystem names OSV uses for the packages Bulwark catalogs.
const (
	EcosystemGo        = "Go"
	EcosystemNPM       = "npm"
	EcosystemPyPI      = "PyPI"
	EcosystemMaven     = "Maven"
	EcosystemCrates    = "crates.io"
	EcosystemRubyGems  = "RubyGems"
	EcosystemPackagist = "Packagist"
	EcosystemNuGet     = "NuGet"
)

// Query is what to look up in the advisory database for one package: the
// OSV ecosystem (with release for distributions, "Debian:12"), the name
// advisories use (the source package for distributions) and the version to
// compare.
type Query struct {
	Ecosystem string
	Name      string
	Version   string
}

// QueryFor maps a catalogued package to its advisory lookup. ok is false for
// packages no OSV ecosystem covers (or whose distro release is unknown).
func QueryFor(p sbom.Package, d *sbom.Distro) (q Query, ok bool) {
	switch p.Type {
	case sbom.TypeDeb, sbom.TypeAPK, sbom.TypeRPM:
		eco, ok := DistroEcosystem(d)
		if !ok {
			return Query{}, false
		}
		name, version := p.Name, p.Version
		if p.Source != nil && p.Source.Name != "" {
			name, version = p.Source.Name, p.Source.Version
		}
		return Query{Ecosystem: eco, Name: name, Version: version}, true
	case sbom.TypeGo:
		if p.Name == "stdlib" {
			return Query{Ecosystem: EcosystemGo, Name: "stdlib", Version: strings.TrimPrefix(p.Version, "go")}, true
		}
		if p.Version == "" || p.Version == "(devel)" {
			return Query{}, false
		}
		return Query{Ecosystem: EcosystemGo, Name: p.Name, Version: p.Version}, true
	case sbom.TypeNPM:
		return Query{Ecosystem: EcosystemNPM, Name: p.Name, Version: p.Version}, true
	case sbom.TypePython:
		return Query{Ecosystem: EcosystemPyPI, Name: NormalizePyPI(p.Name), Version: p.Version}, true
	case sbom.TypeJava:
		// purl pkg:maven/group/artifact@v -> "group:artifact"
		if rest, ok := strings.CutPrefix(p.PURL, "pkg:maven/"); ok {
			coords, _, _ := strings.Cut(rest, "@")
			if group, artifact, ok := strings.Cut(coords, "/"); ok {
				return Query{Ecosystem: EcosystemMaven, Name: group + ":" + artifact, Version: p.Version}, true
			}
		}
		return Query{}, false
	case sbom.TypeRust:
		return Query{Ecosystem: EcosystemCrates, Name: p.Name, Version: p.Version}, true
	case sbom.TypeGem:
		return Query{Ecosystem: EcosystemRubyGems, Name: p.Name, Version: p.Version}, true
	case sbom.TypeComposer:
		return Query{Ecosystem: EcosystemPackagist, Name: p.Name, Version: p.Version}, true
	case sbom.TypeDotnet:
		return Query{Ecosystem: EcosystemNuGet, Name: p.Name, Version: p.Version}, true
	}
	return Query{}, false
}

// DistroEcosystem is the OSV ecosystem of a distribution release:
// "Debian:12", "Ubuntu:22.04:LTS" (as "Ubuntu:22.04"), "Alpine:v3.19",
// "Rocky Linux:9", "AlmaLinux:9", "Red Hat" (not release scoped here).
func DistroEcosystem(d *sbom.Distro) (string, bool) {
	if d == nil || d.ID == "" {
		return "", false
	}
	major, _, _ := strings.Cut(d.VersionID, ".")
	switch d.ID {
	case "debian":
		if major == "" {
			return "", false // sid/testing: no release-scoped advisories
		}
		return "Debian:" + major, true
	case "ubuntu":
		return "Ubuntu:" + d.VersionID, d.VersionID != ""
	case "alpine":
		parts := strings.Split(d.VersionID, ".")
		if len(parts) < 2 {
			return "", false
		}
		return "Alpine:v" + parts[0] + "." + parts[1], true
	case "rocky":
		return "Rocky Linux:" + major, major != ""
	case "almalinux":
		return "AlmaLinux:" + major, major != ""
	case "rhel":
		return "Red Hat", true
	}
	return "", false
}

// NormalizePyPI normalises a Python distribution name as PEP 503 does.
func NormalizePyPI(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r == '-' || r == '_' || r == '.' {
			if !dash {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		dash = false
		b.WriteRune(r)
	}
	return b.String()
}

// Key is the (ecosystem, name) under which an advisory's affected package is
// filed and looked up, so that the queries QueryFor builds find it: Ubuntu's
// ":LTS" suffix is dropped ("Ubuntu:22.04:LTS" -> "Ubuntu:22.04"), every Red
// Hat product stream is "Red Hat", and PyPI names are normalised (PEP 503).
func Key(ecosystem, name string) (string, string) {
	switch {
	case strings.HasPrefix(ecosystem, "Ubuntu:"):
		ecosystem = strings.TrimSuffix(ecosystem, ":LTS")
	case ecosystem == "Red Hat" || strings.HasPrefix(ecosystem, "Red Hat:"):
		ecosystem = "Red Hat"
	case ecosystem == EcosystemPyPI:
		name = NormalizePyPI(name)
	}
	return ecosystem, name
}

// VersionEcosystem names the version ordering of a package type, as
// osv-scalibr's semantic package knows it ("Debian", "npm", ...).
func VersionEcosystem(packageType string) string {
	return map[string]string{
		sbom.TypeDeb: "Debian", sbom.TypeAPK: "Alpine", sbom.TypeRPM: "Red Hat",
		sbom.TypeGo: EcosystemGo, sbom.TypeNPM: EcosystemNPM, sbom.TypePython: EcosystemPyPI,
		sbom.TypeJava: EcosystemMaven, sbom.TypeRust: EcosystemCrates, sbom.TypeGem: EcosystemRubyGems,
		sbom.TypeComposer: EcosystemPackagist, sbom.TypeDotnet: EcosystemNuGet,
	}[packageType]
}
