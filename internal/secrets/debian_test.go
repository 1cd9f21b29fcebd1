package secrets

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// openLayer opens a cached test layer, or skips.
func openLayer(t *testing.T, name string) layerfs.Layer {
	t.Helper()
	p := filepath.Join(testimage.CacheDir(), name)
	f, err := os.Open(p)
	if err != nil {
		t.Skipf("no test layer at %s: %v", p, err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return layerfs.Layer{DiffID: "sha256:" + name, Data: f, Size: st.Size()}
}

// TestDebianBaseHasNoFindings is the false-positive check: a debootstrap'd
// Debian bookworm minbase holds no secret, so every finding would be a false
// positive. internal/testimage builds the layer (for the benchmarks and
// other packages' tests); this test only uses it when it is there. It also
// scans without the default skips, so that the rules alone are measured.
func TestDebianBaseHasNoFindings(t *testing.T) {
	base := openLayer(t, "bookworm-minbase.tar")
	ctx := context.Background()
	start := time.Now()
	fsys, err := layerfs.Build(ctx, []layerfs.Layer{base})
	if err != nil {
		t.Fatal(err)
	}
	indexed := time.Now()
	findings, err := Scan(ctx, fsys, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files in a %d MB layer: index %v, scan %v", len(fsys.LayerFiles(0)), base.Size>>20,
		indexed.Sub(start).Round(time.Millisecond), time.Since(indexed).Round(time.Millisecond))
	for _, f := range findings {
		t.Errorf("false positive: %+v", f)
	}

	t.Run("without default skips", func(t *testing.T) {
		saved := DefaultSkipPaths
		DefaultSkipPaths = nil
		defer func() { DefaultSkipPaths = saved }()
		start := time.Now()
		findings, err := Scan(ctx, fsys, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("scan %v", time.Since(start).Round(time.Millisecond))
		for _, f := range findings {
			t.Errorf("false positive: %+v", f)
		}
	})
}

// TestAppLayerHasNoFindings: the benchmark image's application layer (a Go
// binary and an npm project with lodash, minimist and node-fetch) over the
// Debian base holds no secret either.
func TestAppLayerHasNoFindings(t *testing.T) {
	fsys, err := layerfs.Build(context.Background(), []layerfs.Layer{openLayer(t, "bookworm-minbase.tar"), openLayer(t, "app-layer-v2.tar")})
	if err != nil {
		t.Fatal(err)
	}
	findings, err := Scan(context.Background(), fsys, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("false positive: %+v", f)
	}
}
