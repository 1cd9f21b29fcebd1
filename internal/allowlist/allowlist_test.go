package allowlist

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

type entry struct {
	name, link string
	mode       int64
	body       string
}

func tarLayer(t *testing.T, gz bool, entries ...entry) Layer {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	b := buf.Bytes()
	return Layer{DiffID: "sha256:" + string(rune('a'+len(b)%26)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

func sum(s string) Digest { return sha256.Sum256([]byte(s)) }

func TestFromLayers(t *testing.T) {
	l1 := tarLayer(t, false,
		entry{name: "bin/app", mode: 0o755, body: "app"},
		entry{name: "bin/gone", mode: 0o755, body: "gone"},
		entry{name: "etc/conf", mode: 0o644, body: "conf"},
		entry{name: "usr/lib/libx.so", mode: 0o644, body: "lib"},
	)
	l2 := tarLayer(t, true,
		entry{name: "bin/.wh.gone", mode: 0o644},
		entry{name: "bin/tool", mode: 0o750, body: "tool"},
		entry{name: "opt/run", mode: 0o644, body: "\x7fELF run"},
		entry{name: "entry", link: "/opt/run"},
	)
	l, err := FromLayers(context.Background(), "sha256:img", []Layer{l1, l2}, Config{Entrypoint: []string{"/entry"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		body string
		want bool
	}{
		{"app", true}, {"tool", true},
		{"\x7fELF run", true},           // named by the entrypoint, through a symlink
		{"gone", false},                 // whited out by the upper layer
		{"conf", false}, {"lib", false}, // not executable
	} {
		if _, ok := l.Allows(sum(c.body)); ok != c.want {
			t.Errorf("Allows(%q) = %v, want %v", c.body, ok, c.want)
		}
	}
	if l.Len() != 3 {
		t.Errorf("Len = %d, want 3", l.Len())
	}
}

func TestFromInventory(t *testing.T) {
	files := []sbom.File{
		{Path: "/usr/bin/app", Type: "file", Mode: "0755", Digest: sum("app").String()},
		{Path: "/bin", Type: "symlink", Mode: "0777", Linkname: "usr/bin"},
		{Path: "/srv/main.py", Type: "file", Mode: "0644", Digest: sum("py").String()},
	}
	l, err := FromInventory("sha256:img", files, Config{Cmd: []string{"app"}, Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := l.Allows(sum("app")); !ok || p != "/usr/bin/app" {
		t.Errorf("Allows(app) = %q, %v", p, ok)
	}
	if _, ok := l.Allows(sum("py")); ok {
		t.Error("a non-executable file that no entrypoint names is allowed")
	}

	var missing *MissingDigestsError
	_, err = FromInventory("x", []sbom.File{{Path: "/bin/a", Type: "file", Mode: "0755"}}, Config{})
	if !errors.As(err, &missing) || missing.Path != "/bin/a" {
		t.Errorf("no digest: %v, want MissingDigestsError", err)
	}
	for _, bad := range []sbom.File{
		{Path: "relative", Type: "file", Mode: "0755"},
		{Path: "/" + string(bytes.Repeat([]byte("a"), MaxPath)), Type: "file", Mode: "0755"},
		{Path: "/bin/a", Type: "file", Mode: "0755", Digest: "sha256:zz"},
	} {
		if _, err := FromInventory("x", []sbom.File{bad}, Config{}); err == nil {
			t.Errorf("entry %.40q accepted", bad.Path)
		}
	}
	old := MaxEntries
	MaxEntries = 2
	defer func() { MaxEntries = old }()
	var tl *TooLargeError
	if _, err := FromInventory("x", make([]sbom.File, 3), Config{}); !errors.As(err, &tl) {
		t.Errorf("oversized table: %v, want TooLargeError", err)
	}
}

// TestSymlinkLoopEntrypoint: an entrypoint through a symlink loop adds
// nothing and does not hang.
func TestSymlinkLoopEntrypoint(t *testing.T) {
	files := []sbom.File{{Path: "/a", Type: "symlink", Linkname: "/b"}, {Path: "/b", Type: "symlink", Linkname: "a"}}
	l, err := FromInventory("x", files, Config{Entrypoint: []string{"/a"}})
	if err != nil || l.Len() != 0 {
		t.Fatalf("loop: %v, %d entries", err, l.Len())
	}
}

func TestCompiledCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(p, []byte("app"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := FromInventory("x", []sbom.File{{Path: "/bin/app", Type: "file", Mode: "0755", Digest: sum("app").String()}}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := Compile(l, 16)
	cache := NewDigestCache(16)
	check := func() Decision {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d, err := c.Check(f, cache)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := check(); !d.Allowed || d.Cached || d.ImagePath != "/bin/app" {
		t.Fatalf("first check: %+v", d)
	}
	if d := check(); !d.Allowed || !d.Cached {
		t.Fatalf("second check: %+v, want a cached allow", d)
	}
	// Modified in place (same inode): a new identity, hashed again, refused.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	f.Close()
	if d := check(); d.Allowed || d.Cached || d.Digest != sum("appx") {
		t.Fatalf("after modification: %+v", d)
	}
	if cache.Hashed() != 2 {
		t.Errorf("hashed %d files, want 2", cache.Hashed())
	}
}

// TestDigestCacheHashedWhileHashing: the count of hashed files is read
// (the agent's Stats and metrics) while other goroutines hash; under
// `go test -race` the plain int64 it was failed this test.
func TestDigestCacheHashedWhileHashing(t *testing.T) {
	dir := t.TempDir()
	cache := NewDigestCache(64)
	var wg sync.WaitGroup
	for i := range 8 {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(p, []byte(p), 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(p)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			id, err := IdentityOf(f)
			if err == nil {
				_, _, err = cache.Digest(f, id)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	for range 100 {
		_ = cache.Hashed()
	}
	wg.Wait()
	if n := cache.Hashed(); n != 8 {
		t.Fatalf("hashed %d, want 8", n)
	}
}
