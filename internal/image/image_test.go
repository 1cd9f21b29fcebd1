package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

func layerOf(t testing.TB, files map[string]string) v1.Layer {
	t.Helper()
	b := tarOf(t, files)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage has a base layer and an app layer that overrides os-release.
func testImage(t testing.TB, arch string) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image,
		layerOf(t, map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n", "bin/sh": "#!"}),
		layerOf(t, map[string]string{"app/main": "app", "etc/os-release": "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"" + arch + "\"\n"}))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.Architecture, cf.OS = arch, "linux"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func opts(t *testing.T) Options {
	return Options{CacheDir: filepath.Join(t.TempDir(), "cache")}
}

func checkImage(t *testing.T, img *Image, wantKind string) {
	t.Helper()
	if img.Source.Kind != wantKind {
		t.Errorf("kind = %q, want %q", img.Source.Kind, wantKind)
	}
	b, n, err := img.FS.ReadFile("/etc/os-release", 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "PRETTY_NAME") || n.Layer != 1 {
		t.Errorf("os-release from layer %d: %q", n.Layer, b)
	}
	if len(img.Source.Layers) != 2 || img.Source.Layers[1].DiffID != img.FS.LayerID(1) {
		t.Errorf("layers = %+v", img.Source.Layers)
	}
	if _, err := img.FS.Stat("/bin/sh"); err != nil {
		t.Errorf("base layer file: %v", err)
	}
}

func TestOpenLocalSources(t *testing.T) {
	img := testImage(t, "amd64")
	dir := t.TempDir()

	dockerTar := filepath.Join(dir, "docker.tar")
	if err := tarball.WriteToFile(dockerTar, mustTag(t, "example.com/app:1"), img); err != nil {
		t.Fatal(err)
	}
	ociDir := filepath.Join(dir, "oci")
	p, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(dir, "oci.tar")
	tarDir(t, ociDir, ociTar)
	digest, _ := img.Digest()

	for _, c := range []struct{ input, kind, digest string }{
		{dockerTar, KindDockerArchive, ""},
		{"docker-archive:" + dockerTar, KindDockerArchive, ""},
		{ociDir, KindOCILayout, digest.String()},
		{"oci:" + ociDir, KindOCILayout, digest.String()},
		{"oci-archive:" + ociTar, KindOCIArchive, digest.String()},
		{ociTar, KindOCIArchive, digest.String()},
	} {
		t.Run(c.input, func(t *testing.T) {
			got, err := Open(context.Background(), c.input, opts(t))
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			checkImage(t, got, c.kind)
			if got.Source.Digest != c.digest {
				t.Errorf("digest = %q, want %q", got.Source.Digest, c.digest)
			}
		})
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, _ := os.ReadFile(p)
		tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
		return nil
	})
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRegistryCachesLayers(t *testing.T) {
	reg := registrytest.New(t)
	reg.Push(t, "app:1", testImage(t, "amd64"))
	o := opts(t)
	for run := 0; run < 2; run++ {
		img, err := Open(context.Background(), reg.Ref("app:1"), o)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, KindRegistry)
		img.Close()
	}
	// run 1: config + 2 layers; run 2: the config only (layers from cache)
	if got := reg.BlobGets(); got != 4 {
		t.Errorf("blob downloads = %d, want 4 (3 then 1)", got)
	}
}

// An explicit --platform that a single-platform image does not have is an
// error: an amd64 image was scanned as the arm64 one asked for, without a
// word. The platform it has, or none asked, opens it.
func TestOpenSinglePlatformMismatch(t *testing.T) {
	reg := registrytest.New(t)
	reg.Push(t, "app:1", testImage(t, "amd64"))
	o := opts(t)
	o.Platform = "linux/arm64"
	if img, err := Open(context.Background(), reg.Ref("app:1"), o); err == nil {
		img.Close()
		t.Fatal("an amd64 image opened as linux/arm64")
	} else if !strings.Contains(err.Error(), "linux/amd64, not linux/arm64") {
		t.Errorf("error %q does not name both platforms", err)
	}
	for _, p := range []string{"linux/amd64", ""} {
		o.Platform = p
		img, err := Open(context.Background(), reg.Ref("app:1"), o)
		if err != nil {
			t.Fatalf("platform %q: %v", p, err)
		}
		img.Close()
	}
}

func TestOpenRegistryPlatform(t *testing.T) {
	reg := registrytest.New(t)
	amd, arm := testImage(t, "amd64"), testImage(t, "arm64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	reg.PushIndex(t, "multi:1", idx)
	o := opts(t)
	o.Platform = "linux/arm64"
	img, err := Open(context.Background(), reg.Ref("multi:1"), o)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	armDigest, _ := arm.Digest()
	if img.Source.Digest != armDigest.String() || img.Source.Platform != "linux/arm64" {
		t.Errorf("got %s %s, want the arm64 image %s", img.Source.Digest, img.Source.Platform, armDigest)
	}
}

func TestOpenErrors(t *testing.T) {
	reg := registrytest.New(t)
	reg.Push(t, "app:1", testImage(t, "amd64"))
	dir := t.TempDir()

	// an OCI layout whose layer blob is not valid gzip
	badGzip := filepath.Join(dir, "bad-gzip")
	writeLayout(t, badGzip, append([]byte{0x1f, 0x8b, 8, 0}, bytes.Repeat([]byte{0xff}, 64)...))
	// a layer of 64 MiB of zeros that compresses to a few KiB
	bomb := filepath.Join(dir, "bomb")
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(tarOf(t, map[string]string{"zeros": strings.Repeat("\x00", 64<<20)}))
	zw.Close()
	writeLayout(t, bomb, z.Bytes())

	cases := []struct {
		name, input string
		max         int64
		want        []string
		is          error
	}{
		{"missing-tag", reg.Ref("app:nope"), 0, []string{"app:nope", "MANIFEST_UNKNOWN"}, nil},
		{"missing-repo", reg.Ref("nothing:1"), 0, []string{"nothing:1"}, nil},
		{"unreachable", "127.0.0.1:1/app:1", 0, []string{"127.0.0.1:1/app:1", "connection refused"}, nil},
		{"missing-file", "./no-such.tar", 0, []string{"no such file"}, nil},
		{"corrupt-gzip", badGzip, 0, []string{badGzip, "layer sha256:", "gzip"}, nil},
		{"bomb", bomb, 1 << 20, []string{bomb, "layer sha256:", "larger than the limit"}, ErrLayerTooLarge},
		{"not-an-archive", writeFile(t, dir, "x.tar", "hello"), 0, []string{"x.tar"}, nil},
		// a directory named as a layout that is none: say so, not "openat index.json"
		{"not-a-layout", "oci:" + dir, 0, []string{dir, "not an OCI image layout", "no index.json"}, nil},
	}
	if _, err := Open(context.Background(), writeFile(t, dir, "y.tar", "hello"), Options{CacheDir: t.TempDir(), Platform: "arm64"}); err == nil || !strings.Contains(err.Error(), "want OS/ARCH") {
		t.Errorf("--platform arm64: %v, want a refusal naming the form", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := opts(t)
			o.Limits.MaxLayerSize = c.max
			_, err := Open(context.Background(), c.input, o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			var se *SourceError
			if !errors.As(err, &se) {
				t.Errorf("error is %T, want *SourceError", err)
			}
			// nothing half-written is left in the cache
			leftovers, _ := filepath.Glob(filepath.Join(o.CacheDir, "layers", "sha256", ".partial-*"))
			if len(leftovers) > 0 {
				t.Errorf("cache leftovers: %v", leftovers)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeLayout writes an OCI layout whose one layer blob is exactly blob.
func writeLayout(t *testing.T, dir string, blob []byte) {
	t.Helper()
	if err := testimage.WriteLayoutWithBlob(dir, blob); err != nil {
		t.Fatal(err)
	}
}
