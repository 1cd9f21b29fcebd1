package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/catalog"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

type tent struct {
	name, body string
	typ        byte
	mode       int64
}

func tarBlob(t testing.TB, entries ...tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ, mode := e.typ, e.mode
		if typ == 0 {
			typ = tar.TypeReg
		}
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func compress(t testing.TB, raw []byte, zst bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	if zst {
		w, _ = zstd.NewWriter(&buf)
	} else {
		w = gzip.NewWriter(&buf)
	}
	w.Write(raw)
	w.Close()
	return buf.Bytes()
}

// imageOf builds an image of raw tars, each layer compressed with gzip or
// zstd exactly as given, the config naming the true diff_ids.
func imageOf(t testing.TB, zst bool, raws ...[]byte) v1.Image {
	t.Helper()
	mt := types.OCILayer
	if zst {
		mt = types.OCILayerZStd
	}
	img := empty.Image
	var diffIDs []v1.Hash
	for _, raw := range raws {
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(compress(t, raw, zst), mt)); err != nil {
			t.Fatal(err)
		}
		diffIDs = append(diffIDs, v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))})
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs, cf.OS, cf.Architecture = diffIDs, "linux", "amd64"
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func writeLayout(t testing.TB, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err == nil {
		err = p.AppendImage(img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

const dpkgStatus = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\n" +
	"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\nSource: zlib\nArchitecture: amd64\n\n"

// baseAndApp are two layers: a Debian-like base, and an app layer with
// whiteouts, an opaque directory, a new dpkg database and a large
// incompressible file no cataloger reads.
func baseAndApp(t testing.TB, app string) (base, top []byte) {
	noise := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	base = tarBlob(t,
		tent{name: "etc/os-release", body: "ID=debian\nVERSION_ID=\"12\"\n"},
		tent{name: "var/lib/dpkg/status", body: dpkgStatus},
		tent{name: "usr/share/doc/zlib1g/copyright", body: "License: Zlib\n"},
		tent{name: "usr/bin/tool", body: "\x7fELF not really", mode: 0o755},
		tent{name: "opt/old/", typ: tar.TypeDir, mode: 0o755},
		tent{name: "opt/old/file", body: "old"},
		tent{name: "etc/removed", body: "x"})
	top = tarBlob(t,
		tent{name: "etc/.wh.removed"},
		tent{name: "opt/old/.wh..wh..opq"},
		tent{name: "opt/old/fresh", body: "fresh"},
		tent{name: "var/lib/dpkg/status", body: dpkgStatus + "Package: " + app + "\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n"},
		tent{name: "app/" + app + "/node_modules/left-pad/package.json", body: `{"name":"left-pad","version":"1.3.0"}`},
		tent{name: "app/run.sh", body: "#!/bin/sh\nexec true\n", mode: 0o755},
		tent{name: "app/blob.bin", body: string(noise)})
	return base, top
}

// inventory is what must not differ between the paths: packages (with
// locations and layers), the file table, the layers.
func inventory(t testing.TB, img *image.Image) string {
	t.Helper()
	s, err := catalog.Image(context.Background(), img, catalog.Options{Files: true})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range s.Packages {
		fmt.Fprintf(&b, "pkg %s %s %s %s %v\n", p.Type, p.Name, p.Version, p.Layer, p.Locations)
	}
	for _, f := range s.Files {
		fmt.Fprintf(&b, "file %s %s %s %d %s %s\n", f.Path, f.Type, f.Mode, f.Size, f.Linkname, f.Layer)
	}
	for _, l := range s.Source.Layers {
		fmt.Fprintf(&b, "layer %d %s %d\n", l.Index, l.DiffID, l.Size)
	}
	return b.String()
}

func streamingOpts(t testing.TB, cache string) image.Options {
	return image.Options{CacheDir: cache, Select: catalog.Selection(nil), SelectKey: catalog.SelectionKey}
}

func open(t testing.TB, input string, o image.Options) *image.Image {
	t.Helper()
	img, err := image.Open(context.Background(), input, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// TestStreamingSameInventory: gzip and zstd layers from a layout and from
// an in-process registry, read in one streaming pass, give the same
// inventory as the same layers read by the seek path; nothing decompressed
// is left in the cache.
func TestStreamingSameInventory(t *testing.T) {
	base, top := baseAndApp(t, "app1")
	reg := registrytest.New(t)
	for _, zst := range []bool{false, true} {
		img := imageOf(t, zst, base, top)
		dir := writeLayout(t, img)
		want := inventory(t, open(t, dir, image.Options{CacheDir: t.TempDir()}))
		if !strings.Contains(want, "pkg deb app1 1.0") || !strings.Contains(want, "pkg npm left-pad 1.3.0") {
			t.Fatalf("the seek path misses packages:\n%s", want)
		}
		tag := fmt.Sprintf("app:zstd-%v", zst)
		reg.Push(t, tag, img)
		for _, input := range []string{dir, reg.Ref(tag)} {
			cache := t.TempDir()
			got := open(t, input, streamingOpts(t, cache))
			if inv := inventory(t, got); inv != want {
				t.Errorf("zstd=%v %s: streamed inventory\n%s\nseek inventory\n%s", zst, input, inv, want)
			}
			if got.Stats.LayersStreamed != 2 {
				t.Errorf("stats %+v, want 2 layers streamed", got.Stats)
			}
			if n, _ := got.FS.Lstat("/app/blob.bin"); n == nil {
				t.Error("the file table lost /app/blob.bin")
			} else if _, err := got.FS.ReadNode(n, 1<<30); !errors.Is(err, layerfs.ErrNotRetained) {
				t.Errorf("content nobody asked for was kept: %v", err)
			}
			checkNothingDecompressed(t, cache, int64(len(base)+len(top)))
		}
	}
}

// checkNothingDecompressed: no layer tar in the cache, and the results take
// at most 1% of the layers' size.
func checkNothingDecompressed(t testing.TB, cache string, imageSize int64) {
	t.Helper()
	var total int64
	filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasSuffix(p, ".tar") || strings.HasPrefix(d.Name(), ".") {
			t.Errorf("decompressed or partial file left in the cache: %s", p)
		}
		fi, _ := d.Info()
		total += fi.Size()
		return nil
	})
	if total > imageSize/100 {
		t.Errorf("cache holds %d bytes for an image of %d", total, imageSize)
	}
}

// TestSharedBaseReadOnce: a second image on the same base reads only its
// own layer; the base comes from the results cache, neither downloaded nor
// decompressed again, and the inventory is the same as reading it cold.
func TestSharedBaseReadOnce(t *testing.T) {
	base, top1 := baseAndApp(t, "app1")
	_, top2 := baseAndApp(t, "app2")
	reg := registrytest.New(t)
	reg.Push(t, "app1:1", imageOf(t, false, base, top1))
	reg.Push(t, "app2:1", imageOf(t, false, base, top2))
	cache := t.TempDir()
	first := open(t, reg.Ref("app1:1"), streamingOpts(t, cache))
	if first.Stats.LayersStreamed != 2 {
		t.Fatalf("first image: %+v", first.Stats)
	}
	gets := reg.BlobGets()
	second := open(t, reg.Ref("app2:1"), streamingOpts(t, cache))
	if second.Stats != (image.Stats{LayersStreamed: 1, LayersFromCache: 1}) {
		t.Errorf("second image: %+v, want the base from the cache", second.Stats)
	}
	if got := reg.BlobGets() - gets; got != 2 { // the config and the app layer
		t.Errorf("second image fetched %d blobs, want 2", got)
	}
	cold := open(t, reg.Ref("app2:1"), streamingOpts(t, t.TempDir()))
	if a, b := inventory(t, second), inventory(t, cold); a != b {
		t.Errorf("inventory with the cached base\n%s\ncold\n%s", a, b)
	}
}

// TestStreamingRealImage: on the real test image (debootstrap'd bookworm
// and the app layer with a Go binary and npm packages), the streaming path
// gives the same inventory as the seek path, and every content digest is
// the sha256 of the file as extracted.
func TestStreamingRealImage(t *testing.T) {
	layers := realLayers(t)
	img, err := testimage.Image(layers, nil)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := testimage.WriteDockerArchive(archive, "example.com/real:1", layers, nil); err != nil {
		t.Fatal(err)
	}
	seek := open(t, archive, image.Options{CacheDir: t.TempDir()})
	want := inventory(t, seek)
	reg := registrytest.New(t)
	reg.Push(t, "real:1", img)
	for _, input := range []string{writeLayout(t, img), reg.Ref("real:1")} {
		got := open(t, input, streamingOpts(t, t.TempDir()))
		if inv := inventory(t, got); inv != want {
			t.Errorf("%s: streamed and seek inventories differ:\n%s", input, diffLines(inv, want))
		}
		hashed := 0
		for _, n := range got.FS.Files() {
			if n.Digest == "" {
				continue
			}
			hashed++
			sn, err := seek.FS.Lstat(n.Path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := seek.FS.ReadNode(sn, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("sha256:%x", sha256.Sum256(b)); n.Digest != want {
				t.Errorf("%s: digest %s, extracted file %s", n.Path, n.Digest, want)
			}
		}
		if hashed < 100 {
			t.Errorf("only %d files hashed in a Debian image", hashed)
		}
	}
}

func realLayers(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Debian root filesystem")
	}
	base, err := testimage.DebianLayer()
	if err == nil {
		var app string
		if app, err = testimage.AppLayer(); err == nil {
			return []string{base, app}
		}
	}
	if errors.Is(err, testimage.ErrUnavailable) {
		t.Skip(err)
	}
	t.Fatal(err)
	return nil
}

func diffLines(a, b string) string {
	in := map[string]bool{}
	for _, l := range strings.Split(b, "\n") {
		in[l] = true
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !in[l] {
			out = append(out, "only streamed: "+l)
		}
		delete(in, l)
	}
	for _, l := range strings.Split(b, "\n") {
		if in[l] {
			out = append(out, "only seek: "+l)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], "...")
	}
	return strings.Join(out, "\n")
}

// TestStreamingProgressPerLayer: a registry image read in one pass reports
// its layers on the progress writer, those from the results cache included.
func TestStreamingProgressPerLayer(t *testing.T) {
	base, top1 := baseAndApp(t, "app1")
	_, top2 := baseAndApp(t, "app2")
	reg := registrytest.New(t)
	reg.Push(t, "app1:1", imageOf(t, false, base, top1))
	reg.Push(t, "app2:1", imageOf(t, false, base, top2))
	cache := t.TempDir()
	for _, tag := range []string{"app1:1", "app2:1"} {
		var progress strings.Builder
		o := streamingOpts(t, cache)
		o.Progress = &progress
		open(t, reg.Ref(tag), o)
		out := strings.TrimSpace(progress.String())
		last := out[strings.LastIndex(out, "\r")+1:]
		if !strings.Contains(last, "pulling "+reg.Ref(tag)) || !strings.Contains(last, ": 2/2 layers, ") || !strings.HasSuffix(last, " MB") {
			t.Errorf("%s: last progress line %q, want the layers done of all and the bytes", tag, last)
		}
	}
}
