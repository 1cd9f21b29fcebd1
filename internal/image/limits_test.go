package image

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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// compressedLayer streams a tar of one file of size bytes (zeros, or
// incompressible when random is set) through the compressor and returns the
// compressed blob and the tar's real digest, the diff_id.
func compressedLayer(t testing.TB, name string, size int64, random bool, zst bool) ([]byte, v1.Hash) {
	t.Helper()
	var blob bytes.Buffer
	var zw io.WriteCloser
	if zst {
		w, err := zstd.NewWriter(&blob, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			t.Fatal(err)
		}
		zw = w
	} else {
		zw, _ = gzip.NewWriterLevel(&blob, gzip.BestSpeed)
	}
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, h))
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	var src io.Reader = io.LimitReader(zeros{}, size)
	if random {
		src = io.LimitReader(rand.NewChaCha8([32]byte{byte(len(name)), name[0]}), size)
	}
	if _, err := io.Copy(tw, src); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	return blob.Bytes(), v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// imageOfBlobs is an image whose layers are exactly the given compressed
// blobs and whose config names their true diff_ids.
func imageOfBlobs(t testing.TB, blobs [][]byte, diffIDs []v1.Hash, mt types.MediaType) v1.Image {
	t.Helper()
	img := empty.Image
	for _, b := range blobs {
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(b, mt)); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs = diffIDs
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func layoutDir(t testing.TB, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cacheFiles lists every file under the cache directory, with sizes.
func cacheFiles(t testing.TB, dir string) (map[string]int64, int64) {
	t.Helper()
	out := map[string]int64{}
	var total int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			out[strings.TrimPrefix(p, dir)] = fi.Size()
			total += fi.Size()
		}
		return nil
	})
	return out, total
}

// TestBombRefused: a 256 MiB layer of zeros that compresses to a few
// hundred KiB, with a correct diff_id, is refused by the default limits as
// a decompression bomb, the error names the layer, and the cache holds
// nothing afterwards (before the fix it was decompressed whole into the
// cache and kept).
func TestBombRefused(t *testing.T) {
	for _, zst := range []bool{false, true} {
		t.Run(fmt.Sprintf("zstd=%v", zst), func(t *testing.T) {
			blob, diffID := compressedLayer(t, "zeros", 256<<20, false, zst)
			mt := types.OCILayer
			if zst {
				mt = types.OCILayerZStd
			}
			img := imageOfBlobs(t, [][]byte{blob}, []v1.Hash{diffID}, mt)
			blobDigest, _, _ := v1.SHA256(bytes.NewReader(blob))
			reg := registrytest.New(t)
			reg.Push(t, "bomb:1", img)
			for _, c := range []struct {
				input  string
				stream bool
			}{{layoutDir(t, img), false}, {reg.Ref("bomb:1"), false}, {layoutDir(t, img), true}, {reg.Ref("bomb:1"), true}} {
				input, o := c.input, opts(t)
				if c.stream {
					o.Select, o.SelectKey = keepAll{}, "all"
				}
				_, err := Open(context.Background(), input, o)
				if !errors.Is(err, ErrCompressionRatio) {
					t.Fatalf("%s: error %v, want ErrCompressionRatio", input, err)
				}
				for _, w := range []string{input, "layer " + blobDigest.String(), "--max-compression-ratio"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				if files, _ := cacheFiles(t, o.CacheDir); len(files) > 0 {
					t.Errorf("cache keeps %v after the refusal", files)
				}
			}
		})
	}
}

// TestImageTotalRefused: two incompressible 3 MiB layers pass every
// per-layer limit but not a 4 MiB per-image total, from every kind of
// source, and the refused image leaves no layer in the cache.
func TestImageTotalRefused(t *testing.T) {
	b1, d1 := compressedLayer(t, "one", 3<<20, true, false)
	b2, d2 := compressedLayer(t, "two", 3<<20, true, false)
	img := imageOfBlobs(t, [][]byte{b1, b2}, []v1.Hash{d1, d2}, types.OCILayer)
	reg := registrytest.New(t)
	reg.Push(t, "big:1", img)
	for i, input := range []string{layoutDir(t, img), reg.Ref("big:1"), layoutDir(t, img), reg.Ref("big:1")} {
		o := opts(t)
		if i >= 2 {
			o.Select, o.SelectKey = keepAll{}, "all"
		}
		o.Limits.MaxImageSize = 4 << 20
		_, err := Open(context.Background(), input, o)
		if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "--max-image-size") {
			t.Fatalf("%s: error %v, want ErrImageTooLarge", input, err)
		}
		if files, _ := cacheFiles(t, o.CacheDir); len(files) > 0 {
			t.Errorf("%s: cache keeps %v after the refusal", input, files)
		}
		o.Limits.MaxImageSize = 8 << 20
		got, err := Open(context.Background(), input, o)
		if err != nil {
			t.Fatalf("%s under an 8 MiB total: %v", input, err)
		}
		got.Close()
	}
}

// TestCacheQuotaEvicts: with a 10 MiB quota, a second image evicts the
// least recently used layers of the first; the cache never holds more than
// the quota; layers an open image reads are not evicted (a third open that
// would need them fails with ErrCacheFull instead of overrunning).
func TestCacheQuotaEvicts(t *testing.T) {
	var imgs []v1.Image
	for _, names := range [][2]string{{"a1", "a2"}, {"b1", "b2"}} {
		b1, d1 := compressedLayer(t, names[0], 3<<20, true, false)
		b2, d2 := compressedLayer(t, names[1], 3<<20, true, false)
		imgs = append(imgs, imageOfBlobs(t, [][]byte{b1, b2}, []v1.Hash{d1, d2}, types.OCILayer))
	}
	a, b := layoutDir(t, imgs[0]), layoutDir(t, imgs[1])
	o := opts(t)
	o.Limits.CacheMaxSize = 10 << 20

	ia, err := Open(context.Background(), a, o)
	if err != nil {
		t.Fatal(err)
	}
	ia.Close()
	if _, total := cacheFiles(t, o.CacheDir); total < 6<<20 {
		t.Fatalf("image a not cached: %d bytes", total)
	}
	ib, err := Open(context.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	files, total := cacheFiles(t, o.CacheDir)
	if total > o.Limits.CacheMaxSize {
		t.Errorf("cache holds %d bytes, quota %d: %v", total, o.Limits.CacheMaxSize, files)
	}
	for _, l := range mustLayers(t, imgs[1]) {
		if _, ok := files["/layers/sha256/"+l+".tar"]; !ok {
			t.Errorf("layer %s of the open image b is not cached: %v", l, files)
		}
	}
	if _, err := Open(context.Background(), a, o); !errors.Is(err, ErrCacheFull) {
		t.Errorf("opening a while b is open under the quota: %v, want ErrCacheFull", err)
	}
	if _, total := cacheFiles(t, o.CacheDir); total > o.Limits.CacheMaxSize {
		t.Errorf("cache holds %d bytes after the refusal, quota %d", total, o.Limits.CacheMaxSize)
	}
	ib.Close()
	ia, err = Open(context.Background(), a, o)
	if err != nil {
		t.Fatalf("a after b closed: %v", err)
	}
	ia.Close()
	if _, total := cacheFiles(t, o.CacheDir); total > o.Limits.CacheMaxSize {
		t.Errorf("cache holds %d bytes, quota %d", total, o.Limits.CacheMaxSize)
	}
}

func mustLayers(t testing.TB, img v1.Image) []string {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range cf.RootFS.DiffIDs {
		out = append(out, d.Hex)
	}
	return out
}

// TestStalePartialRemoved: a half-written layer left by a killed run is
// removed the next time the cache is used.
func TestStalePartialRemoved(t *testing.T) {
	o := opts(t)
	dir := filepath.Join(o.CacheDir, "layers", "sha256")
	os.MkdirAll(dir, 0o755)
	stale := filepath.Join(dir, ".partial-123")
	os.WriteFile(stale, make([]byte, 1<<20), 0o644)
	old := stalePartialTime()
	os.Chtimes(stale, old, old)
	img, err := Open(context.Background(), layoutDir(t, testImage(t, "amd64")), o)
	if err != nil {
		t.Fatal(err)
	}
	img.Close()
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale partial layer still there: %v", err)
	}
}

func stalePartialTime() time.Time { return time.Now().Add(-stalePartial - time.Minute) }

// keepAll is a streaming selection that keeps every file.
type keepAll struct{}

func (keepAll) Want(string, fs.FileMode, int64, []byte) layerfs.Want { return layerfs.Keep }
func (keepAll) Keep(string, io.ReaderAt, int64) bool                 { return true }
