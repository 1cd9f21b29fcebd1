package match

import (
	"slices"
	"strings"

	"github.com/google/osv-scalibr/semantic"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// baseEcosystem strips the release from a distro ecosystem: "Debian:12" ->
// "Debian", the name osv-scalibr's version parsers know.
func baseEcosystem(eco string) string {
	base, _, _ := strings.Cut(eco, ":")
	return base
}

// verdict is the outcome of one affected entry for one installed version.
type verdict struct {
	affected bool
	fixed    string // the smallest fixed version above the installed one, if any
}

// evaluate decides whether version is affected by a, and which version fixes
// it. Ranges are evaluated as the OSV schema describes: events sorted by
// version, introduced opens, fixed and last_affected close, limit caps.
func evaluate(a osv.Affected, ecosystem, version string) (verdict, error) {
	eco := baseEcosystem(ecosystem)
	v, err := semantic.Parse(normalize(eco, version), eco)
	if err != nil {
		return verdict{}, err
	}
	var out verdict
	if slices.Contains(a.Versions, version) {
		out.affected = true
	}
	for _, r := range a.Ranges {
		if r.Type == osv.RangeGit {
			continue // commit ranges need the source tree, not an installed version
		}
		rv := evalRange(r, v, eco)
		if rv.affected {
			out.affected = true
			if out.fixed == "" || (rv.fixed != "" && versionLess(eco, rv.fixed, out.fixed)) {
				out.fixed = rv.fixed
			}
		}
	}
	return out, nil
}

// versionLess reports a < b in the ecosystem's ordering; unparseable
// versions sort last.
func versionLess(eco, a, b string) bool {
	va, err := semantic.Parse(normalize(eco, a), eco)
	if err != nil {
		return false
	}
	c, err := va.CompareStr(normalize(eco, b))
	return err == nil && c < 0
}

func evalRange(r osv.Range, v semantic.Version, eco string) verdict {
	type point struct {
		kind    string
		version string
	}
	var points []point
	for _, e := range r.Events {
		switch {
		case e.Introduced != "":
			points = append(points, point{"introduced", e.Introduced})
		case e.Fixed != "":
			points = append(points, point{"fixed", e.Fixed})
		case e.LastAffected != "":
			points = append(points, point{"last_affected", e.LastAffected})
		case e.Limit != "":
			points = append(points, point{"limit", e.Limit})
		}
	}
	// cmp returns the order of the installed version against s (ok=false
	// when s does not parse: the event is ignored).
	cmp := func(s string) (int, bool) {
		if s == "0" {
			return 1, true // "0" is below every version
		}
		c, err := v.CompareStr(normalize(eco, s))
		if err != nil {
			return 0, false
		}
		return c, true
	}
	// Walk the events in version order: the last event at or below the
	// installed version decides.
	sortPoints := func(a, b point) int {
		switch {
		case a.version == b.version:
			return 0
		case a.version == "0":
			return -1
		case b.version == "0":
			return 1
		case versionLess(eco, a.version, b.version):
			return -1
		case versionLess(eco, b.version, a.version):
			return 1
		}
		return 0
	}
	slices.SortStableFunc(points, sortPoints)
	var out verdict
	for _, p := range points {
		c, ok := cmp(p.version)
		if !ok {
			continue
		}
		switch p.kind {
		case "introduced":
			if c >= 0 {
				out.affected = true
			}
		case "fixed":
			if c >= 0 {
				out.affected = false
			} else if out.affected && out.fixed == "" {
				out.fixed = p.version
			}
		case "last_affected":
			if c > 0 {
				out.affected = false
			}
		case "limit":
			if c >= 0 {
				out.affected = false
			}
		}
	}
	if !out.affected {
		out.fixed = ""
	}
	return out
}

// normalize adapts version strings to the parser: Go versions in OSV have no
// "v" prefix, installed Go modules do.
func normalize(eco, version string) string {
	if eco == osv.EcosystemGo {
		return strings.TrimPrefix(version, "v")
	}
	return version
}
