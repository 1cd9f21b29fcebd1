package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

type tarEntry struct {
	name, body, link string
	typ              byte
}

func reg(name, body string) tarEntry { return tarEntry{name: name, body: body, typ: tar.TypeReg} }

func tarBytes(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// archiveOf writes a docker archive whose layers are the given tar bytes.
func archiveOf(t *testing.T, dir, name string, layers ...[]byte) string {
	t.Helper()
	var files []string
	for i, l := range layers {
		p := filepath.Join(dir, name+"-layer"+string(rune('0'+i))+".tar")
		if err := os.WriteFile(p, l, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	out := filepath.Join(dir, name+".tar")
	if err := testimage.WriteDockerArchive(out, "bad:"+name, files, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

// layoutOf writes an OCI layout whose single layer blob is exactly blob.
func layoutOf(t *testing.T, dir string, blob []byte) string {
	t.Helper()
	if err := testimage.WriteLayoutWithBlob(dir, blob); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSBOMBadInput: every bad input gets a one-line error that names the
// source, the layer and the entry, exit code 2, no panic, and nothing
// written outside the cache directory.
func TestSBOMBadInput(t *testing.T) {
	sandbox := t.TempDir()
	inputs := filepath.Join(sandbox, "inputs")
	os.MkdirAll(inputs, 0o755)
	registry := registrytest.New(t)
	small, err := testimage.Image([]string{writeInput(t, inputs, "small-layer.tar", string(tarBytes(t, reg("etc/os-release", "ID=debian\n"))))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	registry.Push(t, "app:1", small)

	good := reg("etc/os-release", "ID=debian\nVERSION_ID=12\n")
	truncated := tarBytes(t, good, reg("var/lib/dpkg/status", strings.Repeat("Package: x\n", 400)))
	truncated = truncated[:1536]
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(tarBytes(t, reg("zeros", strings.Repeat("\x00", 32<<20))))
	zw.Close()
	outsideRoot := filepath.Join(inputs, "rootfs-escape")
	os.MkdirAll(filepath.Join(outsideRoot, "etc"), 0o755)
	os.Symlink("../../../../../../../../etc/os-release", filepath.Join(outsideRoot, "etc", "os-release"))

	cases := []struct {
		name  string
		input string
		flags []string
		want  []string
	}{
		{"missing repository", registry.Ref("nothing:here"), nil, []string{registry.Ref("nothing:here"), "NAME_UNKNOWN"}},
		{"missing tag", registry.Ref("app:nope"), nil, []string{registry.Ref("app:nope"), "MANIFEST_UNKNOWN"}},
		{"unreachable registry", "127.0.0.1:9/app:1", nil, []string{"127.0.0.1:9/app:1", "connection refused"}},
		{"missing file", filepath.Join(inputs, "nope.tar"), nil, []string{"nope.tar", "no such file"}},
		{"corrupt gzip", layoutOf(t, filepath.Join(inputs, "corrupt-gzip"), append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0}, bytes.Repeat([]byte{0xee}, 100)...)),
			nil, []string{"corrupt-gzip", "layer sha256:", "flate"}},
		{"truncated tar", archiveOf(t, inputs, "truncated", truncated), nil, []string{"truncated.tar", "layer sha256:", `entry "var/lib/dpkg/status"`, "truncated"}},
		{"dot-dot entry", archiveOf(t, inputs, "dotdot", tarBytes(t, good, reg("../../../../tmp/evil", "pwned"))), nil,
			[]string{"dotdot.tar", "layer sha256:", `entry "../../../../tmp/evil"`, "climbs out"}},
		{"absolute entry", archiveOf(t, inputs, "absolute", tarBytes(t, good, reg("/tmp/evil-abs", "pwned"))), nil,
			[]string{"absolute.tar", "layer sha256:", `entry "/tmp/evil-abs"`, "absolute path"}},
		{"symlink loop", archiveOf(t, inputs, "loop", tarBytes(t,
			tarEntry{name: "etc/os-release", link: "os-release2", typ: tar.TypeSymlink},
			tarEntry{name: "etc/os-release2", link: "os-release", typ: tar.TypeSymlink})), nil,
			[]string{"loop.tar", "layer sha256:", `entry "etc/os-release"`, "too many levels of symbolic links"}},
		{"symlink out of the root", archiveOf(t, inputs, "escape", tarBytes(t,
			tarEntry{name: "etc/os-release", link: "../../../../../etc/os-release", typ: tar.TypeSymlink})), nil,
			[]string{"escape.tar", "layer sha256:", `entry "etc/os-release"`, "outside the image root"}},
		{"symlink out of a rootfs dir", outsideRoot, nil, []string{"rootfs-escape", `entry "etc/os-release"`, "outside the image root"}},
		{"hard link to missing target", archiveOf(t, inputs, "hardlink", tarBytes(t, good, tarEntry{name: "bin/sh", link: "bin/bash", typ: tar.TypeLink})), nil,
			[]string{"hardlink.tar", "layer sha256:", `entry "bin/sh"`, `hard link to missing target "bin/bash"`}},
		{"decompression bomb", layoutOf(t, filepath.Join(inputs, "bomb"), bomb.Bytes()), []string{"--max-layer-size", "1048576"},
			[]string{"bomb", "layer sha256:", "larger than the limit (--max-layer-size)"}},
		{"not an image", writeInput(t, inputs, "notes.tar", "just text"), nil, []string{"notes.tar"}},
	}
	cache := filepath.Join(sandbox, "cache")
	before := snapshot(t, sandbox)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"sbom", c.input, "--cache-dir", cache}, c.flags...)
			stdout, stderr, code := run(t, args...)
			if code != ExitError {
				t.Errorf("exit code %d, want %d; stdout %q", code, ExitError, stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "bulwark: ") {
				t.Errorf("want one error line, got %q", stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q does not mention %q", stderr, w)
				}
			}
			t.Logf("%s", strings.TrimSpace(stderr))
		})
	}
	for p := range snapshot(t, sandbox) {
		if !before[p] && !strings.HasPrefix(p, cache) {
			t.Errorf("written outside the cache dir: %s", p)
		}
	}
	for _, p := range []string{"/tmp/evil", "/tmp/evil-abs", filepath.Join(sandbox, "tmp", "evil")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(cache, "layers", "sha256", ".partial-*")); len(leftovers) > 0 {
		t.Errorf("half-written cache files: %v", leftovers)
	}
}

func writeInput(t *testing.T, dir, name, body string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSBOMUnreadableDatabase: a corrupt line in the dpkg database is a
// warning on stderr naming the file, the line and the layer; it costs its
// own record only (libc6 is still listed, with lodash), the inventory says
// it is incomplete, and the exit code of sbom is 0.
func TestSBOMUnreadableDatabase(t *testing.T) {
	dir := t.TempDir()
	archive := archiveOf(t, dir, "corrupt-db", tarBytes(t,
		reg("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		reg("var/lib/dpkg/status", "Package: libc6\nVersion: 2.36\n\x00\x00binary junk\n"),
		reg("app/node_modules/lodash/package.json", `{"name":"lodash","version":"4.17.15","license":"MIT"}`)))
	stdout, stderr, code := run(t, "sbom", archive, "-f", "json", "--cache-dir", filepath.Join(dir, "cache"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s := decodeSBOM(t, stdout)
	if len(s.Packages) != 2 || s.Packages[0].Name != "libc6" || s.Packages[1].Name != "lodash" {
		t.Errorf("packages = %+v", s.Packages)
	}
	for _, w := range []string{"warning: dpkg-db-cataloger: /var/lib/dpkg/status:3 (layer sha256:", `not a "Field: value" line`} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not mention %q", stderr, w)
		}
	}
	if len(s.Warnings) != 1 || !s.Incomplete || len(s.Problems) != 1 || s.Problems[0].Line != 3 {
		t.Errorf("json warnings = %v, incomplete %v, problems %+v", s.Warnings, s.Incomplete, s.Problems)
	}
}
