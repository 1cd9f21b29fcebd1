package layerfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
)

// keepBy is a Selector over a path predicate; probe files are kept when
// their content contains "keep".
type keepBy struct {
	want  func(string) bool
	probe func(string) bool
}

func (k keepBy) Want(p string, _ fs.FileMode, _ int64, _ []byte) Want {
	switch {
	case k.want != nil && k.want(p):
		return Keep
	case k.probe != nil && k.probe(p):
		return Probe
	}
	return Skip
}

func (k keepBy) Keep(_ string, r io.ReaderAt, size int64) bool {
	b := make([]byte, size)
	r.ReadAt(b, 0)
	return bytes.Contains(b, []byte("keep"))
}

func streamBuild(t testing.TB, sel Selector, digests Digests, memLimit int64, layers ...[]byte) *FS {
	t.Helper()
	var ixs []*Indexed
	for i, l := range layers {
		ix, err := IndexStream(bytes.NewReader(l), "sha256:layer"+string(rune('0'+i)), StreamOptions{Select: sel, Digests: digests, TempDir: t.TempDir(), MemLimit: memLimit})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ix.Close() })
		ixs = append(ixs, ix)
	}
	f, err := BuildIndexed(ixs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// describe is the view as a stable text: path, mode, size, layer, link.
func describe(f *FS) string {
	var b strings.Builder
	for _, n := range f.Files() {
		fmt.Fprintf(&b, "%s %v %d %d %q\n", n.Path, n.Mode, n.Size, n.Layer, n.Linkname)
	}
	return b.String()
}

func whiteoutLayers(t testing.TB) [][]byte {
	return [][]byte{
		layerTar(t, dir("etc/"), file("etc/os-release", "ID=debian\n"), file("etc/gone", "x"),
			dir("opt/app/"), file("opt/app/old", "old"), file("bin/tool", "\x7fELF tool"), hardlink("bin/tool2", "bin/tool"),
			file("usr/lib/libz.so.1", "lib"), file("run.sh", "#!/bin/sh\n")),
		layerTar(t, file("etc/.wh.gone", ""), file("opt/app/.wh..wh..opq", ""), file("opt/app/new", "new keep"),
			file("opt/app/probe-no", "drop me"), symlink("etc/alt", "os-release")),
	}
}

// TestStreamMatchesSeek: the streaming pass and the seek path build the
// same view (whiteouts, opaque directories, hard links, links), and kept
// content reads the same.
func TestStreamMatchesSeek(t *testing.T) {
	layers := whiteoutLayers(t)
	seek := mustBuild(t, layers...)
	sel := keepBy{want: func(p string) bool { return strings.HasPrefix(p, "/etc/") || p == "/bin/tool" }, probe: func(p string) bool { return strings.HasPrefix(p, "/opt/") }}
	for _, mem := range []int64{0, 1} { // in memory, and spilled to an unlinked file
		stream := streamBuild(t, sel, DigestExecutables, mem, layers...)
		if got, want := describe(stream), describe(seek); got != want {
			t.Errorf("streamed view:\n%s\nseek view:\n%s", got, want)
		}
		for _, p := range []string{"/etc/os-release", "/etc/alt", "/bin/tool2", "/opt/app/new"} {
			if got, want := read(t, stream, p), read(t, seek, p); got != want {
				t.Errorf("%s: streamed %q, seek %q", p, got, want)
			}
		}
		for _, p := range []string{"/opt/app/probe-no", "/run.sh"} {
			n, _ := stream.Lstat(p)
			if _, err := stream.ReadNode(n, 1<<20); !errors.Is(err, ErrNotRetained) {
				t.Errorf("%s: %v, want ErrNotRetained", p, err)
			}
		}
	}
}

// TestStreamDigests: executables, ELF files, scripts and shared libraries
// are hashed in the stream, as sha256 of their content; others only with
// DigestAll.
func TestStreamDigests(t *testing.T) {
	layers := whiteoutLayers(t)
	seek := mustBuild(t, layers...)
	for _, c := range []struct {
		mode   Digests
		hashed []string
	}{
		{DigestExecutables, []string{"/bin/tool", "/bin/tool2", "/usr/lib/libz.so.1", "/run.sh"}},
		{DigestAll, []string{"/bin/tool", "/bin/tool2", "/usr/lib/libz.so.1", "/run.sh", "/etc/os-release", "/opt/app/new", "/opt/app/probe-no"}},
	} {
		f := streamBuild(t, nil, c.mode, 0, layers...)
		var got []string
		for _, n := range f.Files() {
			if n.Digest == "" {
				continue
			}
			got = append(got, n.Path)
			want := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(read(t, seek, n.Path))))
			if n.Digest != want {
				t.Errorf("%s: digest %s, want %s", n.Path, n.Digest, want)
			}
		}
		if len(got) != len(c.hashed) {
			t.Errorf("mode %d hashed %v, want %v", c.mode, got, c.hashed)
		}
	}
}

// TestStreamBadEntries: the streaming pass refuses what Build refuses.
func TestStreamBadEntries(t *testing.T) {
	good := layerTar(t, file("etc/os-release", "ID=x\n"), file("var/lib/dpkg/status", strings.Repeat("Package: x\n", 200)))
	for _, c := range []struct {
		name  string
		layer []byte
		want  string
	}{
		{"dot-dot", layerTar(t, file("../../evil", "x")), "climbs out"},
		{"absolute", layerTar(t, file("/abs", "x")), "absolute path"},
		{"truncated", good[:1536], "truncated"},
		{"hard link to nothing", layerTar(t, hardlink("a", "missing")), "hard link to missing target"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ix, err := IndexStream(bytes.NewReader(c.layer), "sha256:bad", StreamOptions{Select: keepBy{want: func(string) bool { return true }}})
			if err == nil {
				_, err = BuildIndexed([]*Indexed{ix})
				ix.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "sha256:bad") {
				t.Errorf("error %v, want %q naming the layer", err, c.want)
			}
		})
	}
}

// TestStoredIndexRoundTrip: a streamed layer stored and read back builds
// the same view with the same digests and kept content; damaged data is
// refused, never trusted.
func TestStoredIndexRoundTrip(t *testing.T) {
	layers := whiteoutLayers(t)
	sel := keepBy{want: func(p string) bool { return strings.HasPrefix(p, "/etc/") || p == "/bin/tool" }}
	var stored []*Indexed
	var blobs [][]byte
	for i, l := range layers {
		ix, err := IndexStream(bytes.NewReader(l), fmt.Sprintf("sha256:l%d", i), StreamOptions{Select: sel})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := ix.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		ix.Close()
		blobs = append(blobs, buf.Bytes())
		back, err := Decode(bytes.NewReader(buf.Bytes()), ix.DiffID, StreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer back.Close()
		stored = append(stored, back)
	}
	f, err := BuildIndexed(stored)
	if err != nil {
		t.Fatal(err)
	}
	direct := streamBuild(t, sel, DigestExecutables, 0, layers...)
	if got, want := describe(f), describe(direct); got != want {
		t.Errorf("stored view:\n%s\nwant:\n%s", got, want)
	}
	if got := read(t, f, "/etc/os-release"); got != "ID=debian\n" {
		t.Errorf("os-release from the stored layer: %q", got)
	}
	n, _ := f.Lstat("/bin/tool")
	if n.Digest == "" {
		t.Error("digest lost in storage")
	}
	for cut := 0; cut < len(blobs[0]); cut += 97 {
		if _, err := Decode(bytes.NewReader(blobs[0][:cut]), "sha256:cut", StreamOptions{}); err == nil {
			t.Fatalf("a stored index cut at %d bytes was accepted", cut)
		}
	}
}

// TestFillDigestsMatchesStream: the seek path's digests, computed on
// demand, equal the streaming pass's.
func TestFillDigestsMatchesStream(t *testing.T) {
	layers := whiteoutLayers(t)
	for _, mode := range []Digests{DigestExecutables, DigestAll} {
		seek := mustBuild(t, layers...)
		if err := seek.FillDigests(t.Context(), mode); err != nil {
			t.Fatal(err)
		}
		stream := streamBuild(t, nil, mode, 0, layers...)
		for _, n := range stream.Files() {
			sn, _ := seek.Lstat(n.Path)
			if sn.Digest != n.Digest {
				t.Errorf("mode %d %s: seek %q, stream %q", mode, n.Path, sn.Digest, n.Digest)
			}
		}
	}
}
