package report

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func testScan() *Scan {
	s := &sbom.SBOM{
		Schema: sbom.SchemaVersion,
		Source: sbom.Source{Name: "app:1", Kind: "docker-archive"},
		Distro: &sbom.Distro{ID: "debian", VersionID: "12"},
		Packages: []sbom.Package{
			{Name: "lodash", Version: "4.17.15", Type: sbom.TypeNPM, PURL: "pkg:npm/lodash@4.17.15", Locations: []sbom.Location{{Path: "/app/node_modules/lodash/package.json"}}},
			{Name: "perl-base", Version: "5.36.0-7+deb12u3", Type: sbom.TypeDeb, PURL: "pkg:deb/debian/perl-base@5.36.0-7%2Bdeb12u3", Locations: []sbom.Location{{Path: "/var/lib/dpkg/status"}}},
		},
	}
	res := &match.Result{
		Findings: []match.Finding{
			{ID: "CVE-2021-23337", Aliases: []string{"GHSA-35jh-r3h4-6jhm"}, Advisories: []string{"GHSA-35jh-r3h4-6jhm"}, Summary: "Command Injection in lodash",
				Severity: match.SeverityHigh, CVSS: &match.CVSS{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", Score: 7.2},
				Status: match.StatusFixed, FixedVersion: "4.17.21", Ecosystem: "npm",
				Package: match.PackageRef{Name: "lodash", Version: "4.17.15", Type: sbom.TypeNPM, PURL: "pkg:npm/lodash@4.17.15", Location: "/app/node_modules/lodash/package.json"}},
			{ID: "CVE-2025-15649", Advisories: []string{"DEBIAN-CVE-2025-15649"}, Severity: match.SeverityUnknown, Status: match.StatusUnfixed, Ecosystem: "Debian:12",
				Package: match.PackageRef{Name: "perl-base", Version: "5.36.0-7+deb12u3", Type: sbom.TypeDeb, PURL: "pkg:deb/debian/perl-base@5.36.0-7%2Bdeb12u3", Source: "perl", Location: "/var/lib/dpkg/status"}},
		},
		Suppressed: []match.Finding{
			{ID: "CVE-2020-8203", Advisories: []string{"GHSA-p6mc-m468-83gw"}, Severity: match.SeverityHigh, Status: match.StatusFixed, FixedVersion: "4.17.20", Ecosystem: "npm",
				Package:     match.PackageRef{Name: "lodash", Version: "4.17.15", Type: sbom.TypeNPM, PURL: "pkg:npm/lodash@4.17.15", Location: "/app/node_modules/lodash/package.json"},
				Suppression: &match.Suppression{Status: "not_affected", Justification: "vulnerable_code_not_in_execute_path", Document: "app.vex.json"}},
		},
	}
	return New(s, res, Database{Records: 3})
}

func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		t.Skipf("cannot fetch %s for its schema: %v", module, err)
	}
	var m struct{ Dir string }
	if json.Unmarshal(out, &m) != nil || m.Dir == "" {
		t.Skipf("cannot locate %s", module)
	}
	return m.Dir
}

func validate(t *testing.T, schemas map[string]string, root string, doc []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	for url, file := range schemas {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(url, s); err != nil {
			t.Fatal(err)
		}
	}
	schema, err := c.Compile(root)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(v); err != nil {
		t.Errorf("invalid: %v", err)
	}
}

// TestSARIFValidates checks the SARIF output against the SARIF 2.1.0 schema
// (shipped in gosec's module testdata).
func TestSARIFValidates(t *testing.T) {
	schema := filepath.Join(moduleDir(t, "github.com/securego/gosec/v2@v2.30.0"), "report", "sarif", "testdata", "sarif-schema-2.1.0.json")
	var buf bytes.Buffer
	if err := Encode(&buf, testScan(), "sarif"); err != nil {
		t.Fatal(err)
	}
	validate(t, map[string]string{"https://json.schemastore.org/sarif-2.1.0.json": schema}, "https://json.schemastore.org/sarif-2.1.0.json", buf.Bytes())
	out := buf.String()
	for _, want := range []string{`"ruleId": "CVE-2021-23337"`, `"security-severity": "7.2"`, `"level": "error"`, `"uri": "app/node_modules/lodash/package.json"`, `"status": "accepted"`} {
		if !strings.Contains(out, want) {
			t.Errorf("SARIF lacks %s", want)
		}
	}
}

func TestCycloneDXVulnerabilitiesValidate(t *testing.T) {
	dir := filepath.Join(moduleDir(t, "github.com/CycloneDX/cyclonedx-go@v0.12.0"), "schema")
	var buf bytes.Buffer
	if err := Encode(&buf, testScan(), "cyclonedx"); err != nil {
		t.Fatal(err)
	}
	validate(t, map[string]string{
		"http://cyclonedx.org/schema/bom-1.6.schema.json":  filepath.Join(dir, "bom-1.6.schema.json"),
		"http://cyclonedx.org/schema/spdx.schema.json":     filepath.Join(dir, "spdx.schema.json"),
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": filepath.Join(dir, "jsf-0.82.schemax.json"),
	}, "http://cyclonedx.org/schema/bom-1.6.schema.json", buf.Bytes())
	if !strings.Contains(buf.String(), `"state": "not_affected"`) {
		t.Error("suppressed finding lacks its VEX analysis")
	}
}

func TestTable(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, testScan(), "table"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"lodash     4.17.15           CVE-2021-23337  HIGH      4.17.21",
		"perl-base  5.36.0-7+deb12u3  CVE-2025-15649  UNKNOWN   (no fix)",
		"app:1: 2 vulnerabilities (1 high, 1 unknown); 1 suppressed by VEX",
		"not_affected: vulnerable_code_not_in_execute_path",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
