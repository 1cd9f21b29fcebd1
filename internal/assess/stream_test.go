package assess_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-sec/bulwark/internal/assess"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/secrets"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// Fake credentials in AWS's and GitHub's formats.
const (
	fakeKeyID  = "AKIAQ3EGT7XK5VNR2WPZ"
	fakeSecret = "q8Vt3Zr7Kp2Lm9Xw4Yb6Nc1Jd5Hf0Gs8Ta2Ue7Ri"
	fakeDBPass = "Xk3vQ9-pLm27Rt!"
)

// tarLayer is an uncompressed layer of files (a body of "" with a .wh.
// name is a whiteout), in the order given.
func tarLayer(t *testing.T, files ...[2]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o600, Size: int64(len(f[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(f[1]))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestStreamingSameAssessment: two images on the real Debian base and a
// shared layer holding secrets, gzip layers in an OCI layout. The second
// image deletes one of the shared layer's secrets. Read in one streaming
// pass per layer (the second image's shared layers from the results
// cache), each image has the same packages and the same secret findings,
// Deleted included, as when its layers are decompressed whole.
func TestStreamingSameAssessment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Debian root filesystem")
	}
	debian, err := testimage.DebianLayer()
	if errors.Is(err, testimage.ErrUnavailable) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	appTar, err := testimage.AppLayer()
	if err != nil {
		t.Fatal(err)
	}
	base, err := tarball.LayerFromFile(debian)
	if err != nil {
		t.Fatal(err)
	}
	app, err := tarball.LayerFromFile(appTar)
	if err != nil {
		t.Fatal(err)
	}
	shared := tarLayer(t,
		[2]string{"root/.aws/credentials", "[default]\naws_access_key_id = " + fakeKeyID + "\naws_secret_access_key = " + fakeSecret + "\n"},
		[2]string{"etc/app/db.yaml", "password: " + fakeDBPass + "\n"},
		[2]string{"etc/app/db.yaml", "password: ${DB_PASSWORD}\n"}, // written twice in one layer
	)
	one := tarLayer(t, [2]string{"app/one/settings.txt", "nothing here either\n"})
	two := tarLayer(t, [2]string{"root/.aws/.wh.credentials", ""}, [2]string{"app/two/readme.txt", "nothing here\n"})

	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, top := range []v1.Layer{one, two} {
		img, err := mutate.AppendLayers(empty.Image, base, app, shared, top)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf.OS, cf.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests = append(digests, d.String())
	}

	streamCache := t.TempDir()
	for i, d := range digests {
		// OCI layout paths name one image by digest through a one-image layout
		src := singleImageLayout(t, dir, d)
		keep := run(t, src, image.Options{CacheDir: t.TempDir()}, false)
		start := time.Now()
		got := run(t, src, image.Options{CacheDir: streamCache}, true)
		t.Logf("image %d streamed in %v: %+v", i, time.Since(start).Round(time.Millisecond), got.stats)
		if got.packages != keep.packages {
			t.Errorf("image %d: packages differ", i)
		}
		if !reflect.DeepEqual(got.secrets, keep.secrets) {
			t.Errorf("image %d: streamed findings\n  %s\nkeep-layers findings\n  %s", i, describe(got.secrets), describe(keep.secrets))
		}
		want := image.Stats{LayersStreamed: 4}
		if i == 1 {
			want = image.Stats{LayersStreamed: 1, LayersFromCache: 3}
		}
		if got.stats != want {
			t.Errorf("image %d: %+v, want %+v", i, got.stats, want)
		}
		lines := describe(got.secrets)
		for _, w := range []string{"aws-secret-access-key /root/.aws/credentials:3 layer 2", "generic-password /etc/app/db.yaml:1 layer 2 deleted"} {
			if !strings.Contains(lines, w) {
				t.Errorf("image %d: no finding %q in\n  %s", i, w, lines)
			}
		}
		if deleted := strings.Contains(lines, "/root/.aws/credentials:2 layer 2 deleted"); deleted != (i == 1) {
			t.Errorf("image %d: the AWS key deleted=%v, want %v:\n  %s", i, deleted, i == 1, lines)
		}
	}
	filepath.WalkDir(filepath.Join(streamCache, "layers"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("the streaming path left %s", p)
		}
		return nil
	})
}

// singleImageLayout writes a layout holding only the image digest of the
// layout at dir (blobs are hard links).
func singleImageLayout(t *testing.T, dir, digest string) string {
	t.Helper()
	src, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := v1.NewHash(digest)
	img, err := src.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "one")
	p, err := layout.Write(out, empty.Index)
	if err == nil {
		err = p.AppendImage(img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type result struct {
	packages string
	secrets  []secrets.Finding
	stats    image.Stats
}

func run(t *testing.T, src string, iopts image.Options, stream bool) result {
	t.Helper()
	opts := assess.Options{Image: iopts}
	if stream {
		var err error
		if opts.Image, err = opts.Streaming(); err != nil {
			t.Fatal(err)
		}
	}
	img, err := image.Open(context.Background(), src, opts.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	a, err := assess.Run(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range a.SBOM.Packages {
		fmt.Fprintf(&b, "%s %s %s %s %v\n", p.Type, p.Name, p.Version, p.Layer, p.Locations)
	}
	return result{packages: b.String(), secrets: a.Secrets, stats: img.Stats}
}

func describe(fs []secrets.Finding) string {
	var out []string
	for _, f := range fs {
		s := fmt.Sprintf("%s %s:%d layer %d", f.Rule, f.Path, f.Line, f.LayerIndex)
		if f.Deleted {
			s += " deleted"
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n  ")
}
