package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/report"
)

// advisoryDB imports the real OSV records of internal/match/testdata plus
// extra records (file name -> JSON) into a new database.
func advisoryDB(t *testing.T, extra map[string]string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := t.TempDir()
	records := filepath.Join(dir, "records")
	os.MkdirAll(records, 0o755)
	src := filepath.Join(filepath.Dir(file), "..", "match", "testdata", "osv")
	files, _ := filepath.Glob(filepath.Join(src, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(records, filepath.Base(f)), b, 0o644)
	}
	for name, body := range extra {
		os.WriteFile(filepath.Join(records, name), []byte(body), 0o644)
	}
	path := filepath.Join(dir, "osv.db")
	stdout, stderr, code := run(t, "db", "import", records, "--db", path)
	if code != 0 {
		t.Fatalf("db import: exit %d: %s %s", code, stdout, stderr)
	}
	return path
}

func decodeScan(t *testing.T, out string) *report.Scan {
	t.Helper()
	var s report.Scan
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("decoding scan json: %v\n%.400s", err, out)
	}
	return &s
}

func ids(fs []match.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Package.Name+"@"+f.Package.Version+" "+f.ID+" "+f.FixedVersion)
	}
	slices.Sort(out)
	return out
}

// TestScanRealImage: db import, then scan of the debootstrap bookworm image
// with an old Go binary and vulnerable npm packages.
func TestScanRealImage(t *testing.T) {
	archive := realDockerArchive(t)
	db := advisoryDB(t, nil)
	stdout, stderr, code := run(t, "scan", archive, "--db", db, "-f", "json", "--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := ids(decodeScan(t, stdout).Findings)
	for _, want := range []string{
		"golang.org/x/text@v0.3.7 CVE-2022-32149 0.3.8",
		"gopkg.in/yaml.v2@v2.2.2 CVE-2019-11254 2.2.8",
		"gopkg.in/yaml.v2@v2.2.2 CVE-2021-4235 2.2.3",
		"gopkg.in/yaml.v2@v2.2.2 CVE-2022-3064 2.2.4",
		"lodash@4.17.15 CVE-2020-28500 4.17.21",
		"lodash@4.17.15 CVE-2020-8203 4.17.20",
		"lodash@4.17.15 CVE-2021-23337 4.17.21",
		"minimist@1.2.0 CVE-2020-7598 1.2.3",
		"minimist@1.2.0 CVE-2021-44906 1.2.6",
		"node-fetch@2.6.0 CVE-2020-15168 2.6.1",
		"node-fetch@2.6.0 CVE-2022-0235 2.6.7",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing finding %q in %v", want, got)
		}
	}
	for _, g := range got {
		if strings.HasPrefix(g, "golang.org/x/text@v0.3.7 CVE-2021-38561") {
			t.Errorf("x/text 0.3.7 is the fixed version of CVE-2021-38561: %s", g)
		}
	}
}

// TestScanFlags covers --fail-on, --ignore-unfixed, --severity and --vex on
// the fixture image.
func TestScanFlags(t *testing.T) {
	archive := fixtureImage(t)
	unfixed := `{"id":"BULWARK-TEST-0001","modified":"2026-01-01T00:00:00Z","summary":"unfixed issue in whatwg-url",
	  "affected":[{"package":{"ecosystem":"npm","name":"whatwg-url"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}],
	  "database_specific":{"severity":"LOW"}}`
	db := advisoryDB(t, map[string]string{"BULWARK-TEST-0001.json": unfixed})
	cache := t.TempDir()
	scan := func(args ...string) (*report.Scan, string, int) {
		t.Helper()
		stdout, stderr, code := run(t, append([]string{"scan", archive, "--db", db, "--cache-dir", cache, "-f", "json"}, args...)...)
		if code == ExitError {
			t.Fatalf("exit 2: %s", stderr)
		}
		return decodeScan(t, stdout), stderr, code
	}

	all, _, code := scan()
	if code != 0 {
		t.Errorf("no --fail-on: exit %d", code)
	}
	if !slices.Contains(ids(all.Findings), "whatwg-url@5.0.0 BULWARK-TEST-0001 ") {
		t.Errorf("unfixed finding missing: %v", ids(all.Findings))
	}

	_, stderr, code := scan("--fail-on", "critical")
	if code != ExitFindings || !strings.Contains(stderr, "at or above --fail-on CRITICAL") {
		t.Errorf("--fail-on critical with CVE-2021-44906 (critical): exit %d, %q", code, stderr)
	}

	noUnfixed, _, _ := scan("--ignore-unfixed")
	for _, f := range noUnfixed.Findings {
		if f.Status != match.StatusFixed {
			t.Errorf("--ignore-unfixed kept %s %s", f.Package.Name, f.ID)
		}
	}
	if len(noUnfixed.Findings) != len(all.Findings)-1 {
		t.Errorf("--ignore-unfixed: %d findings, want %d", len(noUnfixed.Findings), len(all.Findings)-1)
	}

	high, _, _ := scan("--severity", "high")
	for _, f := range high.Findings {
		if f.Severity < match.SeverityHigh {
			t.Errorf("--severity high kept %s (%s)", f.ID, f.Severity)
		}
	}

	// A VEX statement says minimist (1.2.0, and 0.0.8 in the lock files) is
	// not affected by CVE-2021-44906, the only critical: the findings move to
	// suppressed, with the justification, and no longer fail the build.
	vex := filepath.Join(t.TempDir(), "app.openvex.json")
	os.WriteFile(vex, []byte(`{
  "@context": "https://openvex.dev/ns/v0.2.0",
  "@id": "https://example.com/vex/app-1",
  "author": "Platform Security",
  "timestamp": "2026-01-02T00:00:00Z",
  "version": 1,
  "statements": [{
    "vulnerability": {"name": "CVE-2021-44906"},
    "products": [{"@id": "pkg:npm/minimist@1.2.0"}, {"@id": "pkg:npm/minimist@0.0.8"}],
    "status": "not_affected",
    "justification": "vulnerable_code_not_in_execute_path"
  }]
}`), 0o644)
	suppressed, _, code := scan("--vex", vex, "--fail-on", "critical")
	if code != 0 {
		t.Errorf("--vex: the only critical finding is suppressed, exit %d", code)
	}
	if got := ids(suppressed.Suppressed); !slices.Equal(got, []string{"minimist@0.0.8 CVE-2021-44906 0.2.4", "minimist@0.0.8 CVE-2021-44906 0.2.4", "minimist@1.2.0 CVE-2021-44906 1.2.6"}) {
		t.Errorf("suppressed = %v", got)
	}
	if s := suppressed.Suppressed[0].Suppression; s == nil || s.Justification != "vulnerable_code_not_in_execute_path" || s.Document != vex {
		t.Errorf("suppression = %+v", s)
	}
	if len(suppressed.Findings) != len(all.Findings)-3 {
		t.Errorf("with VEX: %d findings, want %d", len(suppressed.Findings), len(all.Findings)-3)
	}
	table, _, _ := run(t, "scan", archive, "--db", db, "--cache-dir", cache, "--vex", vex)
	if !strings.Contains(table, "Suppressed by VEX:") || !strings.Contains(table, "not_affected: vulnerable_code_not_in_execute_path") {
		t.Errorf("table does not list the suppressed finding:\n%s", table)
	}
}

// TestScanSBOMFile: scanning a CycloneDX SBOM gives the findings of scanning
// the image.
func TestScanSBOMFile(t *testing.T) {
	archive := fixtureImage(t)
	db := advisoryDB(t, nil)
	cache := t.TempDir()
	fromImage, stderr, code := run(t, "scan", archive, "--db", db, "--cache-dir", cache, "-f", "json")
	if code != 0 {
		t.Fatal(stderr)
	}
	for _, format := range []string{"cyclonedx", "json"} {
		sbomFile := filepath.Join(t.TempDir(), "sbom."+format+".json")
		if _, stderr, code := run(t, "sbom", archive, "--cache-dir", cache, "-f", format, "-o", sbomFile); code != 0 {
			t.Fatal(stderr)
		}
		fromSBOM, stderr, code := run(t, "scan", sbomFile, "--db", db, "-f", "json")
		if code != 0 {
			t.Fatal(stderr)
		}
		if a, b := ids(decodeScan(t, fromImage).Findings), ids(decodeScan(t, fromSBOM).Findings); !slices.Equal(a, b) || len(a) == 0 {
			t.Errorf("%s: findings from the SBOM differ:\n image: %v\n sbom:  %v", format, a, b)
		}
	}
}

// An SPDX document is not scanned, and the error says what to give
// instead: it said only "not a Bulwark or CycloneDX JSON SBOM" to a user
// holding the SPDX file bulwark sbom had just written.
func TestScanSPDXSaysWhatToGive(t *testing.T) {
	archive := fixtureImage(t)
	spdx := filepath.Join(t.TempDir(), "app.spdx.json")
	if _, stderr, code := run(t, "sbom", archive, "--cache-dir", t.TempDir(), "-f", "spdx", "-o", spdx); code != 0 {
		t.Fatal(stderr)
	}
	_, stderr, code := run(t, "scan", spdx, "--db", advisoryDB(t, nil))
	if code != ExitError || !strings.Contains(stderr, "an SPDX document") || !strings.Contains(stderr, "-f cyclonedx") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestScanWithoutDatabase(t *testing.T) {
	_, stderr, code := run(t, "scan", fixtureImage(t), "--db", filepath.Join(t.TempDir(), "none.db"))
	if code != ExitError || !strings.Contains(stderr, "no advisory database") || !strings.Contains(stderr, "db import") {
		t.Errorf("exit %d: %q", code, stderr)
	}
}
