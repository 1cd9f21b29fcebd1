package image

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

type selectNothing struct{}

func (selectNothing) Want(string, fs.FileMode, int64, []byte) layerfs.Want { return layerfs.Skip }
func (selectNothing) Keep(string, io.ReaderAt, int64) bool                 { return false }

// TestLayerOrder: the layers whose results are cached are read last; the
// others first, in the image's order, so a new layer on a cached base starts
// at once.
func TestLayerOrder(t *testing.T) {
	o := Options{CacheDir: t.TempDir(), Select: selectNothing{}, SelectKey: "k"}
	o.Limits.fill()
	ld := newLoader(&o)
	var diffIDs []v1.Hash
	for i := range 4 {
		diffIDs = append(diffIDs, v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064d", i)})
	}
	if err := os.MkdirAll(ld.results.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} { // the base's layers are cached
		if err := os.WriteFile(filepath.Join(ld.results.dir, ld.resultKey(diffIDs[i])+".idx.zst"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := ld.order(diffIDs)
	if want := []int{1, 3, 0, 2}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v (uncached in order, then cached)", got, want)
	}
}
