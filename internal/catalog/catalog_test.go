package catalog

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// catalogDir runs catalogers over a fixture root filesystem and returns
// "type name version purl [licenses] locations" lines, sorted.
func catalogDir(t *testing.T, dir string, cs ...Cataloger) ([]string, []string) {
	t.Helper()
	fsys, err := layerfs.FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	in := &Input{FS: fsys, MaxFileSize: 1 << 20}
	if in.Distro, err = readOSRelease(in); err != nil {
		t.Fatal(err)
	}
	pkgs, err := Run(context.Background(), in, cs)
	if err != nil {
		t.Fatal(err)
	}
	return describe(pkgs), in.warnings
}

func describe(pkgs []sbom.Package) []string {
	var out []string
	for _, p := range pkgs {
		var locs []string
		for _, l := range p.Locations {
			locs = append(locs, l.Path)
		}
		line := fmt.Sprintf("%s %s %s %s %v %s", p.Type, p.Name, p.Version, p.PURL, p.Licenses, strings.Join(locs, ","))
		if p.Source != nil {
			line += fmt.Sprintf(" src=%s@%s", p.Source.Name, p.Source.Version)
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestDpkg(t *testing.T) {
	got, warnings := catalogDir(t, "testdata/dpkg", dpkgCataloger())
	assertLines(t, got, []string{
		"deb base-files 12.4+deb12u15 pkg:deb/debian/base-files@12.4%2Bdeb12u15?arch=amd64&distro=debian-12 [] /var/lib/dpkg/status src=base-files@12.4+deb12u15",
		"deb libc6 2.36-9+deb12u14 pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc [GPL-2 LGPL-2.1] /var/lib/dpkg/status,/usr/share/doc/libc6/copyright src=glibc@2.36-9+deb12u14",
		"deb libpam-modules 1.5.2-6+deb12u2 pkg:deb/debian/libpam-modules@1.5.2-6%2Bdeb12u2?arch=amd64&distro=debian-12&upstream=pam [] /var/lib/dpkg/status src=pam@1.5.2-6+deb12u2",
		"deb tar 1.34+dfsg-1.2+deb12u1 pkg:deb/debian/tar@1.34%2Bdfsg-1.2%2Bdeb12u1?arch=amd64&distro=debian-12 [GPL-2 GPL-2+ GPL-3 GPL-3+ LGPL-3 LGPL-3+] /var/lib/dpkg/status,/usr/share/doc/tar/copyright src=tar@1.34+dfsg-1.2+deb12u1",
	})
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
}

func TestDpkgDistroless(t *testing.T) {
	got, _ := catalogDir(t, "testdata/distroless", dpkgDistrolessCataloger())
	assertLines(t, got, []string{
		"deb libssl3 3.0.15-1~deb12u1 pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl [] /var/lib/dpkg/status.d/libssl3 src=openssl@3.0.15-1~deb12u1",
	})
}

func TestAPK(t *testing.T) {
	got, _ := catalogDir(t, "testdata/apk", apkCataloger())
	assertLines(t, got, []string{
		"apk busybox 1.36.1-r15 pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1&upstream=busybox [GPL-2.0-only] /lib/apk/db/installed src=busybox@1.36.1-r15",
		"apk libcrypto3 3.1.4-r5 pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl [Apache-2.0] /lib/apk/db/installed src=openssl@3.1.4-r5",
		"apk musl 1.2.4_git20230717-r4 pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1&upstream=musl [MIT] /lib/apk/db/installed src=musl@1.2.4_git20230717-r4",
	})
}

func TestNPM(t *testing.T) {
	got, _ := catalogDir(t, "testdata/npm", npmPackageCataloger(), npmLockCataloger())
	assertLines(t, got, []string{
		// installed packages; app/package-lock.json is skipped as node_modules is there
		"npm @babel/code-frame 7.24.7 pkg:npm/%40babel/code-frame@7.24.7 [MIT] /app/node_modules/@babel/code-frame/package.json",
		"npm lodash 4.17.15 pkg:npm/lodash@4.17.15 [MIT] /app/node_modules/lodash/package.json",
		"npm node-fetch 2.6.0 pkg:npm/node-fetch@2.6.0 [MIT] /app/node_modules/node-fetch/package.json",
		"npm whatwg-url 5.0.0 pkg:npm/whatwg-url@5.0.0 [MIT] /app/node_modules/node-fetch/node_modules/whatwg-url/package.json",
		// lock v3 without node_modules: no dev, no links
		"npm @types/node 20.11.5 pkg:npm/%40types/node@20.11.5 [MIT] /src-v3/package-lock.json",
		"npm minimist 0.0.8 pkg:npm/minimist@0.0.8 [MIT] /src-v3/package-lock.json",
		"npm minimist 1.2.0 pkg:npm/minimist@1.2.0 [MIT] /src-v3/package-lock.json",
		// lock v1: nested dependencies, no dev, no file: versions
		"npm minimist 0.0.8 pkg:npm/minimist@0.0.8 [] /src-v1/package-lock.json",
		"npm mkdirp 0.5.1 pkg:npm/mkdirp@0.5.1 [] /src-v1/package-lock.json",
	})
}

func TestOSRelease(t *testing.T) {
	for _, c := range []struct{ dir, want string }{
		{"testdata/dpkg", "debian 12 bookworm"},
		{"testdata/apk", "alpine 3.19.1 "},
	} {
		fsys, err := layerfs.FromDir(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		d, err := readOSRelease(&Input{FS: fsys})
		fsys.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%s %s %s", d.ID, d.VersionID, d.VersionCodename); got != c.want {
			t.Errorf("%s: %q, want %q", c.dir, got, c.want)
		}
	}
}

// tarLayer builds an uncompressed layer from path -> content.
func tarLayer(t testing.TB, diffID string, files map[string]string) layerfs.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return layerfs.Layer{DiffID: diffID, Data: bytes.NewReader(buf.Bytes()), Size: int64(buf.Len())}
}

// TestDpkgLayerAttribution: a package installed by the application layer is
// attributed to it, a base package to the base, although the application
// layer rewrote the whole status file.
func TestDpkgLayerAttribution(t *testing.T) {
	stanza := func(name, version string) string {
		return fmt.Sprintf("Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n\n", name, version)
	}
	fsys, err := layerfs.Build(context.Background(), []layerfs.Layer{
		tarLayer(t, "sha256:base", map[string]string{"var/lib/dpkg/status": stanza("libc6", "2.36-9") + stanza("zlib1g", "1:1.2.13.dfsg-1")}),
		tarLayer(t, "sha256:app", map[string]string{"var/lib/dpkg/status": stanza("libc6", "2.36-9") + stanza("zlib1g", "1:1.2.13.dfsg-1+deb12u1") + stanza("curl", "7.88.1-10")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Run(context.Background(), &Input{FS: fsys, MaxFileSize: 1 << 20}, []Cataloger{dpkgCataloger()})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"@"+p.Version+" "+p.Layer+" "+p.Locations[0].Layer)
	}
	assertLines(t, got, []string{
		"libc6@2.36-9 sha256:base sha256:app",
		"zlib1g@1:1.2.13.dfsg-1+deb12u1 sha256:app sha256:app", // upgraded in the app layer
		"curl@7.88.1-10 sha256:app sha256:app",
	})
}

// TestUnreadableDatabaseIsAWarning: a corrupt status file does not stop the
// other catalogers, and the warning names the file, the layer and the line.
func TestUnreadableDatabaseIsAWarning(t *testing.T) {
	fsys, err := layerfs.Build(context.Background(), []layerfs.Layer{
		tarLayer(t, "sha256:base", map[string]string{
			"var/lib/dpkg/status":                      "Package: ok\nVersion: 1\n\x00\x01garbage line\n",
			"app/node_modules/left-pad/package.json":   `{"name":"left-pad","version":"1.3.0"}`,
			"app/node_modules/broken-pkg/package.json": `{"name": "broken-pkg", "vers`,
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{FS: fsys, MaxFileSize: 1 << 20}
	pkgs, err := Run(context.Background(), in, All())
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(pkgs); len(got) != 2 || !strings.Contains(got[0], "deb ok 1") || !strings.Contains(got[1], "left-pad") {
		t.Errorf("packages = %v, want ok (the record before the bad line) and left-pad", got)
	}
	joined := strings.Join(in.warnings, "\n")
	for _, want := range []string{"/var/lib/dpkg/status:3 (layer sha256:base): not a \"Field: value\" line", "/app/node_modules/broken-pkg/package.json:1 (layer sha256:base)"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings %q do not mention %q", joined, want)
		}
	}
}

// TestGoBinary builds a real Go program with old module versions.
func TestGoBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "usr/local/bin/app")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	if err := testimage.BuildGoApp(bin); err != nil {
		t.Skipf("cannot build the Go test program here: %v", err)
	}
	// a non-Go executable and a script must be passed over quietly
	os.WriteFile(filepath.Join(dir, "usr/local/bin/script"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	got, warnings := catalogDir(t, dir, binaryCataloger{})
	goVersion := ""
	for _, l := range got {
		if strings.Contains(l, " stdlib ") {
			goVersion = strings.Fields(l)[2]
		}
	}
	if !strings.HasPrefix(goVersion, "go1.") {
		t.Fatalf("no stdlib package in %v", got)
	}
	assertLines(t, got, []string{
		"go-module example.com/bulwark-testapp (devel) pkg:golang/example.com/bulwark-testapp@%28devel%29 [] /usr/local/bin/app",
		"go-module golang.org/x/net v0.0.0-20211112202133-69e39bad7dc2 pkg:golang/golang.org/x/net@v0.0.0-20211112202133-69e39bad7dc2 [] /usr/local/bin/app",
		"go-module golang.org/x/text v0.3.7 pkg:golang/golang.org/x/text@v0.3.7 [] /usr/local/bin/app",
		"go-module gopkg.in/yaml.v2 v2.2.2 pkg:golang/gopkg.in/yaml.v2@v2.2.2 [] /usr/local/bin/app",
		fmt.Sprintf("go-module stdlib %s pkg:golang/stdlib@%s [] /usr/local/bin/app", goVersion, strings.TrimPrefix(goVersion, "go")),
	})
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
}

func FuzzParseControl(f *testing.F) {
	for _, p := range []string{"testdata/dpkg/var/lib/dpkg/status", "testdata/distroless/var/lib/dpkg/status.d/libssl3"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(" continuation first\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		stanzas, err := parseControl(data)
		if err != nil {
			bad, ok := err.(recordErrors)
			if !ok {
				t.Fatalf("not a record error: %v", err)
			}
			for _, r := range bad {
				if r.Line < 1 {
					t.Fatalf("error without a line number: %v", r)
				}
			}
		}
		for _, s := range stanzas {
			if len(s.fields) == 0 || s.line < 1 {
				t.Fatalf("empty stanza %+v", s)
			}
		}
	})
}

func FuzzParseAPK(f *testing.F) {
	b, err := os.ReadFile("testdata/apk/lib/apk/db/installed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("P\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		records, err := parseAPKRecords(data)
		if _, ok := err.(recordErrors); err != nil && !ok {
			t.Fatalf("not a record error: %v", err)
		}
		for _, r := range records {
			if len(r.fields) == 0 || r.line < 1 {
				t.Fatal("empty record")
			}
		}
	})
}

func FuzzParseNPMLock(f *testing.F) {
	for _, p := range []string{"testdata/npm/src-v3/package-lock.json", "testdata/npm/src-v1/package-lock.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys, err := layerfs.Build(context.Background(), []layerfs.Layer{tarLayer(t, "sha256:x", map[string]string{"src/package-lock.json": string(data)})})
		if err != nil {
			t.Fatal(err)
		}
		n, err := fsys.Stat("/src/package-lock.json")
		if err != nil {
			t.Fatal(err)
		}
		pkgs, _ := parseNPMLock(&Input{FS: fsys, MaxFileSize: 1 << 20}, n, data)
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	b, _ := os.ReadFile("testdata/dpkg/usr/lib/os-release")
	f.Add(b)
	f.Add([]byte("ID=\"unterminated\nVERSION_ID='1'"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := parseOSRelease(data)
		if d == nil {
			t.Fatal("nil distro")
		}
	})
}

func TestGoMainModulePseudoVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.22.1", Main: debug.Module{Path: "example.com/tool", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "293c7e39e62033eafc5b48f9a316d0f5415658d4"}, {Key: "vcs.time", Value: "2026-11-22T20:37:34Z"}}}
	fsys, _ := layerfs.Build(context.Background(), []layerfs.Layer{tarLayer(t, "sha256:x", map[string]string{"bin/tool": "x"})})
	n, _ := fsys.Stat("/bin/tool")
	pkgs := goModules(&Input{FS: fsys}, n, bi)
	if got := pkgs[0].Version; got != "v0.0.0-20261122203734-293c7e39e620" {
		t.Errorf("main module version = %q", got)
	}
	bi.Settings = nil
	if got := goModules(&Input{FS: fsys}, n, bi)[0].Version; got != "(devel)" {
		t.Errorf("without a VCS stamp: %q", got)
	}
}
