package policy

import (
	"fmt"
	"strings"

	"github.com/google/osv-scalibr/semantic"

	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// compiledPin is a Pin whose version constraints are parsed.
type compiledPin struct {
	Pin
	alternatives [][]constraint // any alternative whose constraints all hold
}

type constraint struct {
	op, version string
}

var operators = []string{">=", "<=", "!=", ">", "<", "="}

// compilePin parses constraints like "1.2.3", ">=1.2.0 <2.0.0", "!=1.4.0".
func compilePin(p Pin) (compiledPin, error) {
	if p.Name == "" {
		return compiledPin{}, fmt.Errorf("pin has no name")
	}
	if len(p.Versions) == 0 {
		return compiledPin{}, fmt.Errorf("pin lists no versions")
	}
	cp := compiledPin{Pin: p}
	for _, alt := range p.Versions {
		var cs []constraint
		for _, f := range strings.Fields(strings.ReplaceAll(alt, ",", " ")) {
			c := constraint{op: "=", version: f}
			for _, op := range operators {
				if rest, ok := strings.CutPrefix(f, op); ok {
					c = constraint{op: op, version: rest}
					break
				}
			}
			if c.version == "" {
				return compiledPin{}, fmt.Errorf("constraint %q has no version", f)
			}
			cs = append(cs, c)
		}
		if len(cs) == 0 {
			return compiledPin{}, fmt.Errorf("empty version constraint")
		}
		cp.alternatives = append(cp.alternatives, cs)
	}
	return cp, nil
}

// applies reports whether the pin is about package p.
func (cp compiledPin) applies(p sbom.Package) bool {
	return p.Name == cp.Name && (cp.Type == "" || cp.Type == p.Type)
}

// allows reports whether p's version satisfies one alternative, comparing
// versions with the package ecosystem's own ordering.
func (cp compiledPin) allows(p sbom.Package) (bool, error) {
	eco := osv.VersionEcosystem(p.Type)
	v, err := semantic.Parse(strings.TrimPrefix(p.Version, "v"), eco)
	if err != nil {
		return false, fmt.Errorf("parsing version %q of %s: %w", p.Version, p.Name, err)
	}
	for _, alt := range cp.alternatives {
		ok := true
		for _, c := range alt {
			cmp, err := v.CompareStr(strings.TrimPrefix(c.version, "v"))
			if err != nil {
				return false, fmt.Errorf("comparing %s with %q: %w", p.Name, c.version, err)
			}
			switch c.op {
			case "=":
				ok = ok && cmp == 0
			case "!=":
				ok = ok && cmp != 0
			case ">":
				ok = ok && cmp > 0
			case ">=":
				ok = ok && cmp >= 0
			case "<":
				ok = ok && cmp < 0
			case "<=":
				ok = ok && cmp <= 0
			}
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}
