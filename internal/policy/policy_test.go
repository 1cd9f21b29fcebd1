package policy

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func mustParse(t *testing.T, yaml string) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// goodInput is an image every default rule passes.
func goodInput() *Input {
	cfg := &v1.ConfigFile{Created: v1.Time{Time: now.AddDate(0, 0, -10)}}
	cfg.Config.User = "1000"
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.source": "https://example.com/app", "team": "platform"}
	return &Input{
		Repository: "registry.example.com/team/app",
		Config:     cfg,
		SBOM: &sbom.SBOM{
			Source: sbom.Source{Name: "registry.example.com/team/app@sha256:aa", Digest: "sha256:aa",
				Layers: []sbom.Layer{{DiffID: "sha256:base0", Size: 80 << 20}, {DiffID: "sha256:app1", Size: 5 << 20}}},
			Packages: []sbom.Package{
				{Name: "openssl", Version: "3.0.15-1~deb12u1", Type: sbom.TypeDeb},
				{Name: "lodash", Version: "4.17.21", Type: sbom.TypeNPM},
			},
		},
		Files:      []string{"/usr/local/bin/app"},
		BaseChains: map[string][]string{"registry.example.com/base/debian@sha256:bb": {"sha256:base0"}},
		Now:        now,
	}
}

func status(t *testing.T, d *Decision, rule string) RuleResult {
	t.Helper()
	for _, r := range d.Rules {
		if r.Name == rule {
			return r
		}
	}
	t.Fatalf("no rule %s in %+v", rule, d.Rules)
	return RuleResult{}
}

const fullPolicy = `
name: gold
builtins:
  package-pins:
    allow:
      - {name: openssl, type: deb, versions: [">=3.0.15-1~deb12u1"]}
    deny:
      - {name: telnet, reason: cleartext}
  base-image:
    approved: [registry.example.com/base/debian@sha256:bb]
  lean:
    maxSizeMB: 200
    maxPackages: 50
    distroless: true
`

// TestBuiltinRules: each built-in rule passes on a good input and fails on
// an input broken for that rule alone.
func TestBuiltinRules(t *testing.T) {
	p := mustParse(t, fullPolicy)
	d, err := p.Evaluate(goodInput())
	if err != nil {
		t.Fatal(err)
	}
	if !d.Pass {
		t.Fatalf("good input fails: %v %+v", d.Failed(), d.Rules)
	}
	for _, r := range d.Rules {
		if r.Status != StatusPass {
			t.Errorf("%s: %s on the good input", r.Name, r.Status)
		}
	}
	cases := []struct {
		rule   string
		break_ func(*Input)
		want   string
	}{
		{RuleVulnerabilities, func(in *Input) {
			in.Findings = []match.Finding{{ID: "CVE-2021-23337", Severity: match.SeverityHigh, Status: match.StatusFixed, FixedVersion: "4.17.21",
				Package: match.PackageRef{Name: "lodash", Version: "4.17.15"}}}
		}, "CVE-2021-23337 in lodash 4.17.15 (HIGH, fixed in 4.17.21)"},
		{RulePackagePins, func(in *Input) { in.SBOM.Packages[0].Version = "3.0.11-1~deb12u2" }, "openssl 3.0.11-1~deb12u2 is not an allowed version"},
		{RulePackagePins, func(in *Input) {
			in.SBOM.Packages = append(in.SBOM.Packages, sbom.Package{Name: "telnet", Version: "0.17-44", Type: sbom.TypeDeb})
		}, "banned package telnet 0.17-44 (deb): cleartext"},
		{RuleBaseImage, func(in *Input) { in.SBOM.Source.Layers[0].DiffID = "sha256:other" }, "match none of"},
		{RuleImageAge, func(in *Input) { in.Config.Created = v1.Time{Time: now.AddDate(0, 0, -200)} }, "200 days ago (max 90)"},
		{RuleImageAge, func(in *Input) { in.Config.Created = v1.Time{} }, "no creation time"},
		{RuleNonRoot, func(in *Input) { in.Config.Config.User = "" }, "USER is not set"},
		{RuleNonRoot, func(in *Input) { in.Config.Config.User = "0:0" }, `USER is "0:0"`},
		{RuleLean, func(in *Input) { in.SBOM.Source.Layers[1].Size = 300 << 20 }, "more than 200 MiB"},
		{RuleLean, func(in *Input) { in.Files = append(in.Files, "/bin/sh") }, "shell present: /bin/sh"},
		{RuleLean, func(in *Input) { in.Files = append(in.Files, "/usr/bin/apt-get") }, "package manager present"},
		{RuleRequiredLabels, func(in *Input) { delete(in.Config.Config.Labels, "team") }, "label team is not set"},
		{RuleInventoryComplete, func(in *Input) {
			in.SBOM.AddProblem(sbom.Problem{Cataloger: "dpkg-db-cataloger", Path: "/var/lib/dpkg/status", Line: 12, Layer: "sha256:app1", Message: "not a \"Field: value\" line"})
		}, `incomplete inventory: dpkg-db-cataloger: /var/lib/dpkg/status:12 (layer sha256:app1): not a "Field: value" line`},
	}
	for _, c := range cases {
		t.Run(c.rule+"/"+c.want, func(t *testing.T) {
			in := goodInput()
			c.break_(in)
			d, err := p.Evaluate(in)
			if err != nil {
				t.Fatal(err)
			}
			r := status(t, d, c.rule)
			if r.Status != StatusFail || d.Pass || !strings.Contains(strings.Join(r.Evidence, "\n"), c.want) {
				t.Errorf("%s = %s %v, want fail with %q", c.rule, r.Status, r.Evidence, c.want)
			}
			if failed := d.Failed(); len(failed) != 1 || failed[0] != c.rule {
				t.Errorf("failed rules %v, want only %s", failed, c.rule)
			}
		})
	}
}

func TestCustomRuleAndWaivers(t *testing.T) {
	p := mustParse(t, `
name: team
rules:
  - name: no-lodash-below-4.17.21
    description: lodash must be current
    condition: '!inventory.packages.exists(p, p.name == "lodash" && p.version != "4.17.21")'
    message: lodash is outdated
waivers:
  - rule: vulnerabilities
    images: ["registry.example.com/team/**"]
    ids: [CVE-2021-23337]
    reason: not reachable, fix scheduled
    owner: platform-team
    expires: 2026-12-31
  - rule: no-lodash-below-4.17.21
    reason: migration in progress
    owner: app-team
    expires: 2026-11-01
`)
	in := goodInput()
	in.SBOM.Packages[1].Version = "4.17.15"
	in.Findings = []match.Finding{{ID: "CVE-2021-23337", Aliases: []string{"GHSA-35jh-r3h4-6jhm"}, Severity: match.SeverityHigh, Status: match.StatusFixed,
		Package: match.PackageRef{Name: "lodash", Version: "4.17.15"}}}
	d, err := p.Evaluate(in)
	if err != nil {
		t.Fatal(err)
	}
	if r := status(t, d, RuleVulnerabilities); r.Status != StatusWaived || len(r.Waivers) != 1 || r.Waivers[0].Owner != "platform-team" {
		t.Errorf("vulnerabilities = %+v, want waived by platform-team", r)
	}
	// the custom rule's waiver expired on 2026-11-01: the rule applies again
	custom := status(t, d, "no-lodash-below-4.17.21")
	if custom.Status != StatusFail || custom.Evidence[0] != "lodash is outdated" {
		t.Errorf("custom rule = %+v, want fail", custom)
	}
	if len(d.ExpiredWaivers) != 1 || d.ExpiredWaivers[0].Owner != "app-team" {
		t.Errorf("expired waivers = %+v", d.ExpiredWaivers)
	}
	// the same waiver does not cover another repository
	in.Repository = "registry.example.com/other/app"
	d, _ = p.Evaluate(in)
	if r := status(t, d, RuleVulnerabilities); r.Status != StatusFail {
		t.Errorf("waiver applied outside its images: %s", r.Status)
	}
	// on its last day the waiver still applies; the day after, it does not
	in.Repository = "registry.example.com/team/app"
	in.Now = time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	if d, _ = p.Evaluate(in); status(t, d, RuleVulnerabilities).Status != StatusWaived {
		t.Error("waiver expired before the end of its day")
	}
	in.Now = time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC)
	in.Config.Created = v1.Time{Time: in.Now}
	if d, _ = p.Evaluate(in); status(t, d, RuleVulnerabilities).Status != StatusFail {
		t.Error("expired waiver still applies")
	}
}

func TestLoadErrors(t *testing.T) {
	cases := map[string]string{
		"rules:\n  - name: bad\n    condition: 'image.labels.exists(l, l ==)'\n":           "policy.yaml:3: rule \"bad\": CEL: ",
		"rules:\n  - name: notbool\n    condition: 'image.user + \"x\"'\n":                 "policy.yaml:3: rule \"notbool\": CEL: condition is string, want bool",
		"rules:\n  - name: typo\n    conditon: 'true'\n":                                   "line 3: field conditon not found",
		"builtins:\n  image-age:\n    maxDayz: 3\n":                                        "line 3: field maxDayz not found",
		"builtins:\n  vulnerabilities:\n    maxSeverity: severe\n":                         "unknown severity \"severe\"",
		"builtins:\n  package-pins:\n    allow: [{name: x, versions: ['>=']}]\n":           "constraint \">=\" has no version",
		"waivers:\n  - rule: nope\n    reason: r\n    owner: o\n    expires: 2027-01-01\n": "policy.yaml:2: waiver for unknown rule \"nope\"",
		"waivers:\n  - rule: secrets\n    reason: r\n":                                     "needs a reason, an owner and an expires date",
		"rules:\n  - name: secrets\n    condition: 'true'\n":                               "the name is taken",
	}
	for yaml, want := range cases {
		_, err := Parse("policy.yaml", []byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n  err = %v\n  want %q", yaml, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fullPolicy))
	f.Add([]byte("rules:\n  - name: r\n    condition: 'findings.all(f, f.severity != \"CRITICAL\")'\n"))
	f.Add([]byte("waivers:\n  - rule: secrets\n    reason: r\n    owner: o\n    expires: 2027-01-01\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if _, err := p.Evaluate(goodInput()); err != nil {
			t.Fatalf("a policy that loads must evaluate: %v", err)
		}
	})
}

// A typo in a policy file is named in the file's terms: the message was
// "unmarshal errors:\n  line 4: field builtin not found in type
// policy.fileDoc", Go's type names and a line break in a one-line error.
func TestLoadErrorsInTheFilesTerms(t *testing.T) {
	for doc, want := range map[string]string{
		"name: x\nbuiltin:\n  image-age: {maxDays: 3}\n": "policy.yaml: line 2: field builtin not found",
		"rules:\n  - name: r\n    expr: 'true'\n":        "policy.yaml: line 3: field expr not found",
		"builtins:\n  image-age: {maxDays: many}\n":      "policy.yaml: line 2: cannot unmarshal !!str `many` into int",
		"waivers:\n  - rule: secrets\n    reasn: r\n":    "policy.yaml:2: waiver: field reasn not found",
	} {
		_, err := Parse("policy.yaml", []byte(doc))
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n  err  = %v\n  want %s", doc, err, want)
		}
	}
}
