package match

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// records is a Source over OSV records held in memory, indexed as the
// advisory database indexes them.
type records map[string][]*osv.Record

func (r records) Lookup(_ context.Context, ecosystem, name string) ([]*osv.Record, error) {
	return r[ecosystem+"\x00"+name], nil
}

func loadRecords(t testing.TB) records {
	t.Helper()
	files, _ := filepath.Glob("testdata/osv/*.json")
	out := records{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := osv.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		seen := map[string]bool{}
		for _, a := range r.Affected {
			k := a.Package.Ecosystem + "\x00" + a.Package.Name
			if !seen[k] {
				out[k] = append(out[k], r)
				seen[k] = true
			}
		}
	}
	return out
}

var bookworm = &sbom.Distro{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}

func deb(name, version, src string) sbom.Package {
	return sbom.Package{Name: name, Version: version, Type: sbom.TypeDeb, PURL: "pkg:deb/debian/" + name + "@" + version,
		Source: &sbom.SourcePackage{Name: src, Version: version}}
}

func pkg(typ, name, version string) sbom.Package {
	purlType := map[string]string{sbom.TypeGo: "golang", sbom.TypeNPM: "npm"}[typ]
	return sbom.Package{Name: name, Version: version, Type: typ, PURL: "pkg:" + purlType + "/" + name + "@" + version}
}

func summarize(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s@%s %s %s %s fix=%s [%s]", f.Package.Name, f.Package.Version, f.ID, f.Severity, f.Status, f.FixedVersion, strings.Join(f.Advisories, " ")))
	}
	slices.Sort(out)
	return out
}

func TestMatchRealRecords(t *testing.T) {
	s := &sbom.SBOM{Distro: bookworm, Packages: []sbom.Package{
		deb("perl-base", "5.36.0-7+deb12u3", "perl"),
		deb("apt", "2.6.1", "apt"),
		pkg(sbom.TypeGo, "golang.org/x/text", "v0.3.7"),
		pkg(sbom.TypeGo, "gopkg.in/yaml.v2", "v2.2.2"),
		pkg(sbom.TypeNPM, "lodash", "4.17.15"),
		pkg(sbom.TypeNPM, "minimist", "1.2.0"),
		pkg(sbom.TypeNPM, "node-fetch", "2.6.0"),
		pkg(sbom.TypeNPM, "lodash", "4.17.21"), // fixed everywhere
	}}
	res, err := Match(context.Background(), loadRecords(t), s)
	if err != nil {
		t.Fatal(err)
	}
	got := summarize(res.Findings)
	want := []string{
		// perl 5.36.0-7+deb12u3: CVE-2025-15649 is fixed in deb12u4; CVE-2023-47038 (deb12u1) and CVE-2020-10543 are already fixed
		"perl-base@5.36.0-7+deb12u3 CVE-2025-15649 UNKNOWN fixed fix=5.36.0-7+deb12u4 [DEBIAN-CVE-2025-15649]",
		"apt@2.6.1 CVE-2026-109518 UNKNOWN fixed fix=2.6.2 [DEBIAN-CVE-2026-109518]",
		// x/text 0.3.7: GO-2021-0113 is fixed in 0.3.7 itself
		"golang.org/x/text@v0.3.7 CVE-2022-32149 UNKNOWN fixed fix=0.3.8 [GO-2022-1059]",
		// yaml.v2: GO-2022-0956 and GHSA-6q6q-88xp-6f2r are one vulnerability
		"gopkg.in/yaml.v2@v2.2.2 CVE-2019-11254 UNKNOWN fixed fix=2.2.8 [GO-2020-0036]",
		"gopkg.in/yaml.v2@v2.2.2 CVE-2021-4235 MEDIUM fixed fix=2.2.3 [GHSA-r88r-gmrh-7j83]",
		// GO- records carry no severity; GitHub's rating (HIGH) wins
		"gopkg.in/yaml.v2@v2.2.2 CVE-2022-3064 HIGH fixed fix=2.2.4 [GHSA-6q6q-88xp-6f2r GO-2022-0956]",
		// CVSS 3.1 AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L... scored by go-cvss
		"minimist@1.2.0 CVE-2021-44906 CRITICAL fixed fix=1.2.6 [GHSA-xvch-5gv4-984h]",
		// two affected entries for node-fetch (1.0-3.1.1 and 0-2.6.7): the 2.x fix
		"node-fetch@2.6.0 CVE-2022-0235 HIGH fixed fix=2.6.7 [GHSA-r683-j2x4-v87g]",
		"lodash@4.17.15 CVE-2020-8203 HIGH fixed fix=4.17.20 [GHSA-p6mc-m468-83gw]",
	}
	for _, line := range got {
		t.Log(line)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q", w)
		}
	}
	for _, line := range got {
		if strings.HasPrefix(line, "lodash@4.17.21") {
			t.Errorf("fixed lodash reported: %s", line)
		}
	}
	var npm int
	for _, f := range res.Findings {
		if f.Package.Type == sbom.TypeNPM {
			npm++
		}
	}
	if npm < 5 {
		t.Errorf("%d npm findings, want the 7 GHSA records' worth", npm)
	}
}

// TestReleaseScoping: bookworm advisories never apply to a bullseye image.
func TestReleaseScoping(t *testing.T) {
	s := &sbom.SBOM{
		Distro:   &sbom.Distro{ID: "debian", VersionID: "11", VersionCodename: "bullseye"},
		Packages: []sbom.Package{deb("perl-base", "5.32.1-4+deb11u2", "perl"), deb("apt", "2.2.4", "apt")},
	}
	res, err := Match(context.Background(), loadRecords(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 {
		t.Errorf("bullseye got bookworm findings: %v", summarize(res.Findings))
	}
}

// TestWithdrawnIgnored: GO-2022-0617 is withdrawn.
func TestWithdrawnIgnored(t *testing.T) {
	s := &sbom.SBOM{Packages: []sbom.Package{pkg(sbom.TypeGo, "k8s.io/kubernetes", "v1.20.0")}}
	res, err := Match(context.Background(), loadRecords(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 {
		t.Errorf("withdrawn record matched: %v", summarize(res.Findings))
	}
}
