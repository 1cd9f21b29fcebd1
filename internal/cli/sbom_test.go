package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

func decodeSBOM(t *testing.T, out string) *sbom.SBOM {
	t.Helper()
	var s sbom.SBOM
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("decoding json output: %v\n%.500s", err, out)
	}
	return &s
}

func byType(s *sbom.SBOM) map[string][]sbom.Package {
	m := map[string][]sbom.Package{}
	for _, p := range s.Packages {
		m[p.Type] = append(m[p.Type], p)
	}
	return m
}

func find(pkgs []sbom.Package, name string) *sbom.Package {
	for i := range pkgs {
		if pkgs[i].Name == name {
			return &pkgs[i]
		}
	}
	return nil
}

// TestSBOMRealImage scans a debootstrap'd Debian bookworm with a Go binary
// and an npm tree, from a docker archive, an OCI layout and a registry, and
// checks all three give the same inventory with the right layers.
func TestSBOMRealImage(t *testing.T) {
	archive := realDockerArchive(t)
	cache := filepath.Join(t.TempDir(), "cache")

	stdout, stderr, code := run(t, "sbom", archive, "--format", "json", "--cache-dir", cache)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s := decodeSBOM(t, stdout)
	if s.Distro == nil || s.Distro.ID != "debian" || s.Distro.VersionID != "12" || s.Distro.VersionCodename != "bookworm" {
		t.Errorf("distro = %+v", s.Distro)
	}
	types := byType(s)
	base, app := s.Source.Layers[0].DiffID, s.Source.Layers[1].DiffID

	debs := types[sbom.TypeDeb]
	if len(debs) < 80 {
		t.Errorf("%d deb packages, want the ~88 of a minbase bookworm", len(debs))
	}
	libc := find(debs, "libc6")
	if libc == nil || libc.Source == nil || libc.Source.Name != "glibc" || libc.Layer != base || !strings.Contains(libc.PURL, "upstream=glibc") {
		t.Errorf("libc6 = %+v", libc)
	}
	for _, p := range debs {
		if p.Layer != base {
			t.Errorf("deb %s attributed to layer %s, want the base", p.Name, p.Layer)
		}
	}

	wantGo := []string{"example.com/bulwark-testapp", "golang.org/x/net@v0.0.0-20211112202133-69e39bad7dc2", "golang.org/x/text@v0.3.7", "gopkg.in/yaml.v2@v2.2.2", "stdlib"}
	var gotGo []string
	for _, p := range types[sbom.TypeGo] {
		id := p.Name
		if p.Name != "stdlib" && p.Version != "(devel)" {
			id += "@" + p.Version
		}
		gotGo = append(gotGo, id)
		if p.Layer != app || p.Locations[0].Path != "/usr/local/bin/bulwark-testapp" {
			t.Errorf("go module %s at %+v in layer %s", p.Name, p.Locations, p.Layer)
		}
	}
	slices.Sort(gotGo)
	if !slices.Equal(gotGo, wantGo) {
		t.Errorf("go modules = %v, want %v", gotGo, wantGo)
	}

	var gotNPM []string
	for _, p := range types[sbom.TypeNPM] {
		gotNPM = append(gotNPM, p.Name+"@"+p.Version)
		if p.Layer != app {
			t.Errorf("npm %s in layer %s", p.Name, p.Layer)
		}
	}
	slices.Sort(gotNPM)
	if !slices.Equal(gotNPM, testimage.NPMPackages) {
		t.Errorf("npm = %v, want %v", gotNPM, testimage.NPMPackages)
	}

	// The same image from an OCI layout (gzip layers, decompressed into the
	// cache) and from a registry gives the same packages.
	img, err := testimage.Image(realImageLayers(t), realHistory)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New(t)
	ref := reg.Push(t, "bulwark-testapp:1", img)
	digest, _ := img.Digest()

	for _, src := range []string{dir, ref.String()} {
		stdout, stderr, code := run(t, "sbom", src, "-f", "json", "--cache-dir", cache)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", src, code, stderr)
		}
		other := decodeSBOM(t, stdout)
		if got, want := packageIDs(other), packageIDs(s); !slices.Equal(got, want) {
			t.Errorf("%s: packages differ from the docker archive's", src)
		}
		if other.Source.Digest != digest.String() {
			t.Errorf("%s: digest %s, want %s", src, other.Source.Digest, digest)
		}
	}
}

func packageIDs(s *sbom.SBOM) []string {
	var ids []string
	for _, p := range s.Packages {
		ids = append(ids, p.PURL+" "+p.Layer)
	}
	slices.Sort(ids)
	return ids
}

// schemaDir finds a module's directory in the module cache, downloading it
// from the module proxy when needed; it skips when that is impossible.
func schemaDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		t.Skipf("cannot fetch %s for its JSON schemas: %v", module, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Skipf("cannot locate %s: %v", module, err)
	}
	return m.Dir
}

func loadJSON(t *testing.T, path string) any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// TestSBOMFormatsValidate validates the CycloneDX 1.6 and SPDX 2.3 outputs
// against the official schemas (from cyclonedx-go's and syft's modules).
func TestSBOMFormatsValidate(t *testing.T) {
	source := realOrFixtureImage(t)
	cdxDir := filepath.Join(schemaDir(t, "github.com/CycloneDX/cyclonedx-go@v0.12.0"), "schema")
	spdxFile := filepath.Join(schemaDir(t, "github.com/anchore/syft@v1.57.0"), "schema", "spdx-json", "spdx-schema-2.3.json")

	c := jsonschema.NewCompiler()
	for url, file := range map[string]string{
		"http://cyclonedx.org/schema/bom-1.6.schema.json":  filepath.Join(cdxDir, "bom-1.6.schema.json"),
		"http://cyclonedx.org/schema/spdx.schema.json":     filepath.Join(cdxDir, "spdx.schema.json"),
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": filepath.Join(cdxDir, "jsf-0.82.schemax.json"),
		"http://spdx.org/rdf/terms/2.3":                    spdxFile,
	} {
		if err := c.AddResource(url, loadJSON(t, file)); err != nil {
			t.Fatal(err)
		}
	}
	for format, url := range map[string]string{
		"cyclonedx": "http://cyclonedx.org/schema/bom-1.6.schema.json",
		"spdx":      "http://spdx.org/rdf/terms/2.3",
	} {
		t.Run(format, func(t *testing.T) {
			schema, err := c.Compile(url)
			if err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := run(t, "sbom", source, "-f", format, "--cache-dir", t.TempDir())
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(doc); err != nil {
				t.Errorf("%s output is not valid: %v", format, err)
			}
			if !strings.Contains(stdout, "pkg:npm/lodash@4.17.15") {
				t.Errorf("%s output lacks lodash", format)
			}
		})
	}
}

// realOrFixtureImage is the real image when it can be built here, else the
// small fixture image.
func realOrFixtureImage(t *testing.T) string {
	t.Helper()
	if _, err := testimage.DebianLayer(); err == nil {
		return realDockerArchive(t)
	}
	return fixtureImage(t)
}
