package layerfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// ent describes one tar entry of a test layer.
type ent struct {
	name, body, link string
	typ              byte
	mode             int64
}

func file(name, body string) ent { return ent{name: name, body: body, typ: tar.TypeReg, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) ent {
	return ent{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, to string) ent {
	return ent{name: name, link: to, typ: tar.TypeLink, mode: 0o644}
}

func layerTar(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func build(t testing.TB, layers ...[]byte) (*FS, error) {
	t.Helper()
	var ls []Layer
	for i, l := range layers {
		ls = append(ls, Layer{DiffID: "sha256:layer" + string(rune('0'+i)), Data: bytes.NewReader(l), Size: int64(len(l))})
	}
	return Build(context.Background(), ls)
}

func mustBuild(t testing.TB, layers ...[]byte) *FS {
	t.Helper()
	f, err := build(t, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func read(t *testing.T, f *FS, p string) string {
	t.Helper()
	b, _, err := f.ReadFile(p, 1<<20)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return string(b)
}

func paths(f *FS) string {
	var out []string
	for _, n := range f.Files() {
		out = append(out, n.Path)
	}
	return strings.Join(out, " ")
}

func TestSquashWhiteoutsAndOpaqueDirs(t *testing.T) {
	base := layerTar(t,
		dir("etc/"), file("etc/passwd", "root"), file("etc/shadow", "secret"),
		dir("var/lib/app/"), file("var/lib/app/a", "a"), file("var/lib/app/b", "b"),
		dir("opt/"), file("opt/keep", "k"))
	top := layerTar(t,
		file("etc/.wh.shadow", ""),
		file("var/lib/app/.wh..wh..opq", ""),
		file("var/lib/app/c", "c"),
		file("etc/passwd", "root2"),
		file(".wh.opt", ""))
	f := mustBuild(t, base, top)
	if got, want := paths(f), "/etc /etc/passwd /var /var/lib /var/lib/app /var/lib/app/c"; got != want {
		t.Errorf("files = %q, want %q", got, want)
	}
	if got := read(t, f, "/etc/passwd"); got != "root2" {
		t.Errorf("passwd = %q", got)
	}
	n, _ := f.Stat("/etc/passwd")
	if n.Layer != 1 || f.LayerID(n.Layer) != "sha256:layer1" {
		t.Errorf("passwd layer = %d", n.Layer)
	}
	if n.Prev() == nil || n.Prev().Layer != 0 {
		t.Errorf("passwd history lost: %+v", n.Prev())
	}
	c, _ := f.Stat("/var/lib/app/c")
	if c.Layer != 1 {
		t.Errorf("c layer = %d", c.Layer)
	}
}

func TestOpaqueDirKeepsSameLayerEntries(t *testing.T) {
	base := layerTar(t, dir("d/"), file("d/old", "o"))
	// the new file comes before the marker in tar order: still kept
	top := layerTar(t, dir("d/"), file("d/new", "n"), file("d/.wh..wh..opq", ""))
	f := mustBuild(t, base, top)
	if got := paths(f); got != "/d /d/new" {
		t.Errorf("files = %q", got)
	}
}

func TestHardLinks(t *testing.T) {
	base := layerTar(t, file("usr/bin/perl5.36", "PERL"))
	top := layerTar(t, hardlink("usr/bin/perl", "usr/bin/perl5.36"), file("x", "y"), hardlink("z", "x"))
	f := mustBuild(t, base, top)
	if got := read(t, f, "/usr/bin/perl"); got != "PERL" {
		t.Errorf("hard link reads %q", got)
	}
	n, _ := f.Stat("/usr/bin/perl")
	if n.Layer != 1 || !n.IsRegular() {
		t.Errorf("hard link node = %+v", n)
	}
	if got := read(t, f, "/z"); got != "y" {
		t.Errorf("same-layer hard link reads %q", got)
	}
}

func TestSymlinksResolveInsideRoot(t *testing.T) {
	l := layerTar(t,
		dir("usr/lib/"), file("usr/lib/os-release", "ID=debian"),
		symlink("lib", "usr/lib"),
		dir("etc/"), symlink("etc/os-release", "../usr/lib/os-release"),
		symlink("etc/abs", "/usr/lib/os-release"),
		symlink("etc/loop1", "loop2"), symlink("etc/loop2", "loop1"),
		symlink("etc/escape", "../../../../etc/shadow"),
		symlink("etc/dangling", "nothing"))
	f := mustBuild(t, l)
	for _, p := range []string{"/etc/os-release", "/etc/abs", "/lib/os-release", "/lib/../lib/os-release"} {
		if got := read(t, f, p); got != "ID=debian" {
			t.Errorf("%s reads %q", p, got)
		}
	}
	if n, err := f.Lstat("/etc/os-release"); err != nil || !n.IsSymlink() {
		t.Errorf("Lstat followed the final link: %+v %v", n, err)
	}
	_, err := f.Stat("/etc/loop1")
	if !errors.Is(err, ErrLoop) || !strings.Contains(err.Error(), `entry "etc/loop1"`) {
		t.Errorf("loop: %v", err)
	}
	_, err = f.Stat("/etc/escape")
	if !errors.Is(err, ErrOutsideRoot) || !strings.Contains(err.Error(), "sha256:layer0") {
		t.Errorf("escape: %v", err)
	}
	if _, err := f.Stat("/etc/dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling: %v", err)
	}
}

func TestBadEntries(t *testing.T) {
	good := layerTar(t, file("a", "a"))
	truncated := layerTar(t, file("a", strings.Repeat("x", 4096)), file("b", "b"))
	truncated = truncated[:1024]
	cases := []struct {
		name   string
		layers [][]byte
		want   []string
	}{
		{"dot-dot", [][]byte{layerTar(t, file("../../etc/evil", "x"))}, []string{`entry "../../etc/evil"`, "climbs out"}},
		{"dot-dot-inside", [][]byte{layerTar(t, file("a/../../evil", "x"))}, []string{`entry "a/../../evil"`, "climbs out"}},
		{"absolute", [][]byte{layerTar(t, file("/etc/evil", "x"))}, []string{`entry "/etc/evil"`, "absolute path"}},
		{"hardlink-missing", [][]byte{good, layerTar(t, hardlink("b", "missing"))}, []string{"layer sha256:layer1", `entry "b"`, `hard link to missing target "missing"`}},
		{"truncated", [][]byte{truncated}, []string{"layer sha256:layer0", `entry "a"`, "truncated"}},
		{"not-a-tar", [][]byte{bytes.Repeat([]byte("garbage!"), 200)}, []string{"layer sha256:layer0", "reading tar header"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := build(t, c.layers...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Errorf("error is %T, want *EntryError", err)
			}
		})
	}
}

func TestReadNodeLimit(t *testing.T) {
	f := mustBuild(t, layerTar(t, file("big", strings.Repeat("x", 100))))
	_, _, err := f.ReadFile("/big", 10)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add(layerTar(f, dir("etc/"), file("etc/passwd", "root"), symlink("l", "etc"), hardlink("h", "etc/passwd")),
		layerTar(f, file("etc/.wh.passwd", ""), file("x/.wh..wh..opq", ""), file("etc/a", "a")))
	f.Add(layerTar(f, symlink("a", "b"), symlink("b", "a")), layerTar(f, file("../x", "")))
	f.Add([]byte("not a tar"), []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		fsys, err := build(t, a, b)
		if err != nil {
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("error is %T: %v", err, err)
			}
			return
		}
		for _, n := range fsys.Files() {
			if !strings.HasPrefix(n.Path, "/") || strings.Contains(n.Path, "..") && strings.Contains(n.Path, "/../") {
				t.Fatalf("bad path %q", n.Path)
			}
			if rn, err := fsys.Stat(n.Path); err == nil && rn.IsRegular() {
				fsys.ReadNode(rn, 1<<20)
			}
		}
	})
}

func TestLayerFilesSeeDeletedFiles(t *testing.T) {
	f := mustBuild(t,
		layerTar(t, file("root/.aws/credentials", "secret"), file("etc/passwd", "root")),
		layerTar(t, file("root/.aws/.wh.credentials", "")))
	if _, err := f.Stat("/root/.aws/credentials"); err == nil {
		t.Fatal("the squashed view still has the deleted file")
	}
	var found bool
	for _, lf := range f.LayerFiles(0) {
		if lf.Path == "/root/.aws/credentials" {
			r, err := f.OpenLayerFile(lf)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, lf.Size)
			r.ReadAt(b, 0)
			found = string(b) == "secret"
		}
	}
	if !found {
		t.Error("LayerFiles(0) does not give the deleted file")
	}
	if n := len(f.LayerFiles(1)); n != 0 { // only a whiteout marker
		t.Errorf("layer 1 has %d regular files", n)
	}
}
