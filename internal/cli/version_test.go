package cli

import (
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// TestVersionFlagAndCommand: `bulwark --version` is a flag (it was an
// unknown one) and prints what `bulwark version` prints, version and
// commit stamped at build time.
func TestVersionFlagAndCommand(t *testing.T) {
	saved, savedTool := stamped, sbom.ToolVersion
	t.Cleanup(func() { stamped, sbom.ToolVersion = saved, savedTool })
	Stamp("v1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-11-30T10:00:00Z")

	flagOut, stderr, code := run(t, "--version")
	if code != 0 {
		t.Fatalf("--version: exit %d: %s", code, stderr)
	}
	cmdOut, stderr, code := run(t, "version")
	if code != 0 {
		t.Fatalf("version: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"bulwark v1.2.3\n", "commit:      0123456789abcdef0123456789abcdef01234567\n", "commit time: 2026-11-30T10:00:00Z\n", "go:          go"} {
		if !strings.Contains(cmdOut, want) {
			t.Errorf("version output lacks %q:\n%s", want, cmdOut)
		}
	}
	if flagOut != cmdOut {
		t.Errorf("--version printed\n%s\nbut version printed\n%s", flagOut, cmdOut)
	}
	if sbom.ToolVersion != "v1.2.3" {
		t.Errorf("documents would name tool version %q, want the stamped v1.2.3", sbom.ToolVersion)
	}

	jsonOut, _, code := run(t, "version", "--format", "json")
	var v versionInfo
	if err := json.Unmarshal([]byte(jsonOut), &v); code != 0 || err != nil || v.Version != "v1.2.3" || v.Commit == "" {
		t.Errorf("version --format json: exit %d, %v, %+v", code, err, v)
	}
	if _, _, code := run(t, "version", "--format", "xml"); code != ExitError {
		t.Errorf("unknown format: exit %d, want %d", code, ExitError)
	}
}

// TestVersionFromBuildInfo: without stamps the module's build information
// gives the version and the commit; stamps win over it; nothing at all
// says dev.
func TestVersionFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.3",
		Main:      debug.Module{Path: "github.com/bulwark-sec/bulwark", Version: "v0.0.0-20261201120000-abcdefabcdef+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "abcdefabcdefabcdefabcdefabcdefabcdefabcd"},
			{Key: "vcs.time", Value: "2026-12-01T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := versionFrom("", "", "", bi)
	if v.Version != bi.Main.Version || v.Commit != "abcdefabcdefabcdefabcdefabcdefabcdefabcd" || v.CommitTime != "2026-12-01T12:00:00Z" || !v.Modified || v.Go != "go1.26.3" {
		t.Errorf("from build info: %+v", v)
	}
	var b strings.Builder
	if err := v.write(&b); err != nil || !strings.Contains(b.String(), "abcdefabcdefabcdefabcdefabcdefabcdefabcd (modified)") {
		t.Errorf("text: %v\n%s", err, b.String())
	}

	v = versionFrom("v2.0.0", "1111111111111111111111111111111111111111", "", bi)
	if v.Version != "v2.0.0" || v.Commit != "1111111111111111111111111111111111111111" || v.Modified || v.CommitTime != "2026-12-01T12:00:00Z" {
		t.Errorf("stamped: %+v", v)
	}

	v = versionFrom("", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})
	if v.Version != "dev" || v.Commit != "" {
		t.Errorf("no information: %+v", v)
	}
	if v := versionFrom("", "", "", nil); v.Version != "dev" {
		t.Errorf("no build info: %+v", v)
	}
}
