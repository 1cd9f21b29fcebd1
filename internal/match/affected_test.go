package match

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

func rng(typ string, events ...osv.Event) osv.Range { return osv.Range{Type: typ, Events: events} }
func intro(v string) osv.Event                      { return osv.Event{Introduced: v} }
func fixed(v string) osv.Event                      { return osv.Event{Fixed: v} }
func last(v string) osv.Event                       { return osv.Event{LastAffected: v} }
func limit(v string) osv.Event                      { return osv.Event{Limit: v} }

// TestEvaluate covers each ecosystem's ordering at its edge cases and every
// kind of OSV event.
func TestEvaluate(t *testing.T) {
	eco := osv.RangeEcosystem
	cases := []struct {
		name, ecosystem, version string
		affected                 osv.Affected
		want                     bool
		wantFix                  string
	}{
		// dpkg: epochs, tildes, revisions
		{"dpkg epoch beats upstream", "Debian:12", "1:1.2.13.dfsg-1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("1.3-1"))}}, false, ""},
		{"dpkg no epoch below epoch", "Debian:12", "1.3-1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("1:1.0-1"))}}, true, "1:1.0-1"},
		{"dpkg tilde sorts before release", "Debian:12", "3.0.15-1~deb12u1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("3.0.15-1"))}}, true, "3.0.15-1"},
		{"dpkg revision", "Debian:12", "5.36.0-7+deb12u3", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("5.36.0-7+deb12u10"))}}, true, "5.36.0-7+deb12u10"},
		{"dpkg unfixed", "Debian:12", "2.36-9+deb12u14", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"))}}, true, ""},
		// rpm
		{"rpm release", "Rocky Linux:9", "3.0.7-24.el9", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("3.0.7-25.el9_3"))}}, true, "3.0.7-25.el9_3"},
		{"rpm epoch", "AlmaLinux:9", "1:1.1.1k-1.el9", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("1.2.0-1.el9"))}}, false, ""},
		// apk
		{"apk revision", "Alpine:v3.19", "3.1.4-r5", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("3.1.4-r6"))}}, true, "3.1.4-r6"},
		{"apk _rc before release", "Alpine:v3.19", "1.2.4_rc1-r0", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("1.2.4-r5"))}}, true, "1.2.4-r5"},
		{"apk _git after release", "Alpine:v3.19", "1.2.4_git20230717-r4", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("1.2.4-r5"))}}, false, ""},
		// Go: v prefix, pseudo-versions, +incompatible, the standard library
		{"go pseudo-version", "Go", "v0.0.0-20211112202133-69e39bad7dc2", osv.Affected{Ranges: []osv.Range{rng(osv.RangeSemver, intro("0"), fixed("0.0.0-20220906165146-f3363e06e74c"))}}, true, "0.0.0-20220906165146-f3363e06e74c"},
		{"go fixed exactly", "Go", "v0.3.7", osv.Affected{Ranges: []osv.Range{rng(osv.RangeSemver, intro("0"), fixed("0.3.7"))}}, false, ""},
		{"go stdlib", "Go", "1.22.1", osv.Affected{Ranges: []osv.Range{rng(osv.RangeSemver, intro("0"), fixed("1.21.9"), intro("1.22.0-0"), fixed("1.22.2"))}}, true, "1.22.2"},
		{"go stdlib older line fixed", "Go", "1.21.10", osv.Affected{Ranges: []osv.Range{rng(osv.RangeSemver, intro("0"), fixed("1.21.9"), intro("1.22.0-0"), fixed("1.22.2"))}}, false, ""},
		{"go incompatible", "Go", "v17.0.0+incompatible", osv.Affected{Ranges: []osv.Range{rng(osv.RangeSemver, intro("0"), fixed("20.10.11+incompatible"))}}, true, "20.10.11+incompatible"},
		// npm: prereleases sort before releases
		{"npm prerelease", "npm", "3.0.0-beta.9", osv.Affected{Ranges: []osv.Range{rng(eco, intro("3.0.0-beta.1"), fixed("3.0.0"))}}, true, "3.0.0"},
		{"npm last_affected inclusive", "npm", "1.2.5", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), last("1.2.5"))}}, true, ""},
		{"npm above last_affected", "npm", "1.2.6", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), last("1.2.5"))}}, false, ""},
		// PEP 440: post, dev, rc, local
		{"pypi rc before release", "PyPI", "2.0.0rc1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("2.0.0"))}}, true, "2.0.0"},
		{"pypi post after release", "PyPI", "2.31.0.post1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("2.31.0"))}}, false, ""},
		{"pypi dev before pre", "PyPI", "1.0.dev1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("1.0a1"), fixed("1.1"))}}, false, ""},
		// Maven: qualifiers
		{"maven milestone", "Maven", "2.0.0-M1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("2.0.0"))}}, true, "2.0.0"},
		{"maven sp after release", "Maven", "1.0-sp1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), fixed("1.0"))}}, false, ""},
		// RubyGems: prerelease letters
		{"rubygems prerelease", "RubyGems", "7.0.0.rc1", osv.Affected{Ranges: []osv.Range{rng(eco, intro("6.0.0"), fixed("7.0.0"))}}, true, "7.0.0"},
		// explicit versions, limit, multiple ranges
		{"versions list", "PyPI", "1.4.2", osv.Affected{Versions: []string{"1.4.1", "1.4.2"}}, true, ""},
		{"limit caps the range", "npm", "5.0.0", osv.Affected{Ranges: []osv.Range{rng(eco, intro("0"), limit("4.0.0"))}}, false, ""},
		{"below introduced", "npm", "0.9.0", osv.Affected{Ranges: []osv.Range{rng(eco, intro("1.0.0"), fixed("1.5.0"))}}, false, ""},
		{"git ranges are skipped", "npm", "1.0.0", osv.Affected{Ranges: []osv.Range{rng(osv.RangeGit, intro("abc"), fixed("def"))}}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := evaluate(c.affected, c.ecosystem, c.version)
			if err != nil {
				t.Fatal(err)
			}
			if got.affected != c.want || got.fixed != c.wantFix {
				t.Errorf("evaluate(%s %s) = affected %v fix %q, want %v %q", c.ecosystem, c.version, got.affected, got.fixed, c.want, c.wantFix)
			}
		})
	}
}

func FuzzEvaluate(f *testing.F) {
	f.Add("Debian:12", "1:2.3-4~bpo1", "0", "2.3-5")
	f.Add("npm", "1.0.0-beta.1+build", "1.0.0-alpha", "1.0.0")
	f.Add("PyPI", "1!2.0.post3.dev4+local", "0", "1!2.0")
	f.Add("Go", "v0.0.0-20211112202133-69e39bad7dc2", "0", "0.1.0")
	f.Add("Maven", "1.0-SNAPSHOT", "0.9", "1.0.0.Final")
	f.Add("Alpine:v3.19", "1.2.4_git20230717-r4", "0", "1.2.4-r5")
	f.Add("Rocky Linux:9", "1:3.0.7-24.el9", "0", "3.0.7-25.el9_3")
	f.Add("RubyGems", "7.0.0.rc1", "6", "7")
	f.Fuzz(func(t *testing.T, eco, version, introduced, fixedV string) {
		a := osv.Affected{Ranges: []osv.Range{rng(osv.RangeEcosystem, intro(introduced), fixed(fixedV))}, Versions: []string{fixedV}}
		v, err := evaluate(a, eco, version)
		if err == nil && !v.affected && v.fixed != "" {
			t.Fatalf("unaffected with a fix: %+v", v)
		}
	})
}
