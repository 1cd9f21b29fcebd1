package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// runLangFixture runs catalogers over a root filesystem directory, reading
// files of up to 1 MiB, and returns the packages, sorted by name, version and
// first path, and the warnings.
func runLangFixture(t *testing.T, dir string, distro *sbom.Distro, catalogers ...Cataloger) ([]sbom.Package, []string) {
	t.Helper()
	return runLangFixtureMax(t, dir, distro, 1<<20, catalogers...)
}

func runLangFixtureMax(t *testing.T, dir string, distro *sbom.Distro, maxFileSize int64, catalogers ...Cataloger) ([]sbom.Package, []string) {
	t.Helper()
	fsys, err := layerfs.FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	in := &Input{FS: fsys, Distro: distro, MaxFileSize: maxFileSize, TempDir: t.TempDir()}
	pkgs, err := Run(context.Background(), in, catalogers)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sortLangPackages(pkgs)
	return pkgs, in.warnings
}

func sortLangPackages(pkgs []sbom.Package) {
	slices.SortFunc(pkgs, func(a, b sbom.Package) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version), cmp.Compare(firstLocation(a), firstLocation(b)))
	})
}

func firstLocation(p sbom.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0].Path
}

// assertLangPackages compares packages field by field and prints both sides
// as JSON when they differ.
func assertLangPackages(t *testing.T, got, want []sbom.Package) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d packages, want %d:\n%s", len(got), len(want), langJSON(got))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("package %d:\n got %s\nwant %s", i, langJSON(got[i]), langJSON(want[i]))
		}
	}
}

func langJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// langSeeds adds every file under dir whose path satisfies match to a fuzz
// corpus.
func langSeeds(f *testing.F, dir string, match func(string) bool) {
	f.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !match(filepath.ToSlash(p)) {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil {
			f.Add(data)
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
}

func TestPythonCataloger(t *testing.T) {
	const sp = "/usr/local/lib/python3.11/site-packages/"
	pkg := func(name, version, purl, loc string, licenses ...string) sbom.Package {
		return sbom.Package{
			Name: name, Version: version, Type: sbom.TypePython, PURL: purl, Licenses: licenses,
			Locations: []sbom.Location{{Path: loc}}, Cataloger: "python-installed-package-cataloger",
		}
	}
	want := []sbom.Package{
		pkg("PyYAML", "6.0.1", "pkg:pypi/pyyaml@6.0.1", sp+"PyYAML-6.0.1.dist-info/METADATA", "MIT"),
		pkg("bulwark-demo", "0.3.0.dev0", "pkg:pypi/bulwark-demo@0.3.0.dev0", "/opt/app/src/bulwark_demo.egg-info/PKG-INFO"),
		pkg("numpy", "1.26.4", "pkg:pypi/numpy@1.26.4", sp+"numpy-1.26.4.dist-info/METADATA", "BSD License"),
		pkg("packaging", "24.2", "pkg:pypi/packaging@24.2", sp+"packaging-24.2.dist-info/METADATA", "Apache-2.0", "BSD License"),
		pkg("python-apt", "2.6.0", "pkg:pypi/python-apt@2.6.0", "/usr/lib/python3/dist-packages/python_apt-2.6.0.egg-info", "GNU GPL"),
		pkg("requests", "2.31.0", "pkg:pypi/requests@2.31.0", sp+"requests-2.31.0.dist-info/METADATA", "Apache 2.0"),
		pkg("typing_extensions", "4.13.2", "pkg:pypi/typing-extensions@4.13.2", sp+"typing_extensions-4.13.2.dist-info/METADATA", "PSF-2.0"),
	}
	got, warnings := runLangFixture(t, "testdata/python", nil, pythonCataloger())
	assertLangPackages(t, got, want)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "broken-0.1.dist-info/METADATA") {
		t.Errorf("warnings = %q, want one about broken-0.1.dist-info/METADATA", warnings)
	}
}

func TestIsPythonMetadata(t *testing.T) {
	for p, want := range map[string]bool{
		"/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA": true,
		"/app/src/demo.egg-info/PKG-INFO":                              true,
		"/usr/lib/python3/dist-packages/python_apt-2.6.0.egg-info":     true,
		"/usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD":   false,
		"/usr/src/demo-1.0/PKG-INFO":                                   false,
		"/usr/src/demo-1.0/METADATA":                                   false,
	} {
		if got := isPythonMetadata(p); got != want {
			t.Errorf("isPythonMetadata(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestNormalizePythonName(t *testing.T) {
	for name, want := range map[string]string{
		"PyYAML":            "pyyaml",
		"typing_extensions": "typing-extensions",
		"zope.interface":    "zope-interface",
		"Foo__Bar-.baz":     "foo-bar-baz",
	} {
		if got := normalizePythonName(name); got != want {
			t.Errorf("normalizePythonName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestPythonLicenses(t *testing.T) {
	tests := []struct {
		name, headers string
		want          []string
	}{
		{"expression wins", "License-Expression: MIT OR Apache-2.0\nLicense: MIT\nClassifier: License :: OSI Approved :: BSD License\n", []string{"MIT OR Apache-2.0"}},
		{"unknown falls back to classifiers", "License: UNKNOWN\nClassifier: License :: OSI Approved :: MIT License\n", []string{"MIT"}},
		{"long license text falls back", "License: " + strings.Repeat("x", 81) + "\nClassifier: License :: Public Domain\n", []string{"Public Domain"}},
		{"OSI Approved alone is no license", "Classifier: License :: OSI Approved\n", nil},
		{"duplicates once", "Classifier: License :: OSI Approved :: MIT License\nClassifier: License :: OSI Approved :: MIT License\n", []string{"MIT"}},
		{"CRLF", "License: BSD-3-Clause\r\n", []string{"BSD-3-Clause"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseRFC822Headers([]byte(tt.headers))
			if err != nil {
				t.Fatal(err)
			}
			if got := pythonLicenses(h); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPythonPackageErrors(t *testing.T) {
	for _, data := range []string{
		"",
		"Name: foo\n",
		"Version: 1.0\n",
		" continuation first\n",
		"\nName: foo\nVersion: 1.0\n", // the headers end at the empty first line
	} {
		if _, err := pythonPackage([]byte(data)); err == nil {
			t.Errorf("pythonPackage(%q): no error", data)
		}
	}
}

func FuzzParsePythonMetadata(f *testing.F) {
	langSeeds(f, "testdata/python", func(p string) bool { return isPythonMetadata(strings.TrimPrefix(p, "testdata/python")) })
	f.Add([]byte("Name: a\nVersion: 1\nLicense: x\n \n\tmore\nClassifier: License :: :: \n\nbody"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pythonPackage(data)
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" || !strings.HasPrefix(p.PURL, "pkg:pypi/") {
			t.Errorf("bad package %+v", p)
		}
		for _, l := range p.Licenses {
			if l == "" {
				t.Errorf("empty license in %q", p.Licenses)
			}
		}
	})
}
