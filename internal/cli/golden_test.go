package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/testimage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixtureImage packs two of the catalog fixtures as a two-layer `docker save`
// archive: a Debian dpkg database, then npm projects. Its bytes, and so its
// diffIDs, are the same on every machine.
func fixtureImage(t *testing.T) string {
	t.Helper()
	layers := fixtureLayers(t)
	archive := filepath.Join(filepath.Dir(layers[0]), "fixture.tar")
	if err := testimage.WriteDockerArchive(archive, "bulwark-fixture:1", layers, fixtureHistory); err != nil {
		t.Fatal(err)
	}
	return archive
}

var fixtureHistory = []string{"ADD rootfs /", "COPY app /"}

// fixtureLayers are the fixture image's two uncompressed layer tars.
func fixtureLayers(t *testing.T) []string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	fixtures := filepath.Join(filepath.Dir(file), "..", "catalog", "testdata")
	dir := t.TempDir()
	var layers []string
	for _, name := range []string{"dpkg", "npm"} {
		out := filepath.Join(dir, name+".tar")
		if err := testimage.TarDir(filepath.Join(fixtures, name), out); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, out)
	}
	return layers
}

func TestSBOMGolden(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767323045")
	archive := fixtureImage(t)
	for _, format := range []string{"table", "json", "cyclonedx", "spdx"} {
		t.Run(format, func(t *testing.T) {
			stdout, stderr, code := run(t, "sbom", archive, "-f", format, "--cache-dir", t.TempDir())
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got := strings.ReplaceAll(stdout, archive, "FIXTURE.tar")
			golden := filepath.Join("testdata", "golden", "sbom."+format+".golden")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/cli -run TestSBOMGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (rerun with -update if intended):\n%s", golden, firstDiff(string(want), got))
			}
		})
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, w, g)
		}
	}
	return ""
}

// A SOURCE_DATE_EPOCH that is not a number fails the command naming it: it
// was ignored, and a pipeline's "reproducible" SBOMs differed silently.
func TestSBOMMalformedSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "2026-01-02")
	archive := fixtureImage(t)
	stdout, stderr, code := run(t, "sbom", archive, "--cache-dir", t.TempDir())
	if code != ExitError || !strings.Contains(stderr, `SOURCE_DATE_EPOCH "2026-01-02"`) || stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d naming SOURCE_DATE_EPOCH", code, stdout, stderr, ExitError)
	}
}
