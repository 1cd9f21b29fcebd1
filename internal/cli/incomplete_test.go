package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damagedRootfs is a root filesystem whose dpkg database has a line that is
// not "Field: value" in its second of three stanzas.
func damagedRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
		"var/lib/dpkg/status": "Package: first\nStatus: install ok installed\nVersion: 1.0\n\n" +
			"Package: second\nStatus: install ok installed\n\x01garbage\nVersion: 2.0\n\n" +
			"Package: third\nStatus: install ok installed\nVersion: 3.0\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestScanIncompleteInventory: a damaged dpkg database is no longer a clean
// scan. Every other package is listed, the report says the inventory is
// incomplete (file, line) in every format, and a gating scan exits 3 unless
// --fail-on-incomplete=false; an SBOM carries the fact to a later scan.
func TestScanIncompleteInventory(t *testing.T) {
	root := damagedRootfs(t)
	db := advisoryDB(t, nil)

	sbomOut, stderr, code := run(t, "sbom", root, "-f", "json")
	if code != 0 {
		t.Fatalf("sbom: exit %d: %s", code, stderr)
	}
	for _, want := range []string{`"name": "first"`, `"name": "second"`, `"name": "third"`, `"incomplete": true`, `"line": 7`} {
		if !strings.Contains(sbomOut, want) {
			t.Errorf("sbom json lacks %s:\n%s", want, sbomOut)
		}
	}
	if !strings.Contains(stderr, "/var/lib/dpkg/status:7") {
		t.Errorf("no warning naming the file and line: %q", stderr)
	}

	scanJSON, stderr, code := run(t, "scan", root, "--db", db, "-f", "json")
	if code != 0 {
		t.Fatalf("scan without a gate: exit %d: %s", code, stderr)
	}
	if s := decodeScan(t, scanJSON); !s.Incomplete || len(s.Problems) != 1 || s.Problems[0].Path != "/var/lib/dpkg/status" || s.Problems[0].Line != 7 {
		t.Errorf("scan json: incomplete %v, problems %+v", s.Incomplete, s.Problems)
	}

	table, _, code := run(t, "scan", root, "--db", db, "--fail-on", "low")
	if code != ExitIncomplete || !strings.Contains(table, "INCOMPLETE INVENTORY: 1 records") || !strings.Contains(table, "/var/lib/dpkg/status:7") {
		t.Errorf("scan --fail-on low: exit %d, want %d, table:\n%s", code, ExitIncomplete, table)
	}
	if _, _, code := run(t, "scan", root, "--db", db, "--fail-on", "low", "--fail-on-incomplete=false"); code != 0 {
		t.Errorf("--fail-on-incomplete=false: exit %d, want 0", code)
	}
	if _, _, code := run(t, "scan", root, "--db", db, "--fail-on-incomplete"); code != ExitIncomplete {
		t.Errorf("--fail-on-incomplete alone: exit %d, want %d", code, ExitIncomplete)
	}

	for format, want := range map[string]string{
		"sarif":     `"bulwark:inventory:complete": false`,
		"cyclonedx": `"bulwark:inventory:complete"`,
	} {
		out, stderr, code := run(t, "scan", root, "--db", db, "-f", format)
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "/var/lib/dpkg/status:7") {
			t.Errorf("scan -f %s: exit %d %s, lacks %s", format, code, stderr, want)
		}
	}
	spdx, _, _ := run(t, "sbom", root, "-f", "spdx")
	if !strings.Contains(spdx, "bulwark:inventory:complete=false") {
		t.Errorf("spdx has no comment on the incomplete inventory:\n%.2000s", spdx)
	}

	cdxFile := filepath.Join(t.TempDir(), "sbom.cdx.json")
	if _, stderr, code := run(t, "sbom", root, "-f", "cyclonedx", "-o", cdxFile); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := run(t, "scan", cdxFile, "--db", db, "--fail-on", "critical"); code != ExitIncomplete {
		t.Errorf("scan of the CycloneDX SBOM: exit %d (%s), want %d", code, stderr, ExitIncomplete)
	}
}
