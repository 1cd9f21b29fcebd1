package image

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// TestImageTotalCountsCachedLayers: two 3 MiB layers, each read once in an
// image of its own, are both in the results cache; an image made of the
// two (any registry pusher can make one) passed a 4 MiB per-image total
// because layers from the cache were charged to nothing. They are now
// charged their stored size, as a streamed layer is.
func TestImageTotalCountsCachedLayers(t *testing.T) {
	b1, d1 := compressedLayer(t, "one", 3<<20, true, false)
	b2, d2 := compressedLayer(t, "two", 3<<20, true, false)
	reg := registrytest.New(t)
	reg.Push(t, "one:1", imageOfBlobs(t, [][]byte{b1}, []v1.Hash{d1}, types.OCILayer))
	reg.Push(t, "two:1", imageOfBlobs(t, [][]byte{b2}, []v1.Hash{d2}, types.OCILayer))
	reg.Push(t, "both:1", imageOfBlobs(t, [][]byte{b1, b2}, []v1.Hash{d1, d2}, types.OCILayer))
	o := opts(t)
	o.Select, o.SelectKey = keepAll{}, "all"
	o.Limits.MaxImageSize = 4 << 20
	for _, ref := range []string{"one:1", "two:1"} {
		img, err := Open(context.Background(), reg.Ref(ref), o)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		img.Close()
	}
	img, err := Open(context.Background(), reg.Ref("both:1"), o)
	if err == nil {
		t.Fatalf("both layers from the cache: %+v, want ErrImageTooLarge", img.Stats)
	}
	if !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("error %v, want ErrImageTooLarge", err)
	}
}

// panicky panics on the first file it is shown: a stand-in for a parser
// bug a hostile layer finds (as a regular file of mode 040755 did).
type panicky struct{}

func (panicky) Layer() layerfs.LayerInspector { return panicky{} }
func (panicky) File(string, fs.FileMode, int64, []byte) io.WriteCloser {
	panic("a parser bug")
}
func (panicky) Done() ([]byte, error) { return nil, nil }

// TestPanicIsAnError: a panic while a layer is read, in the layer's own
// goroutine, killed the process (the server, and again on every retry of
// the scan job). It is now the scan's error, ErrPanic, from a registry and
// from a layout alike.
func TestPanicIsAnError(t *testing.T) {
	b1, d1 := compressedLayer(t, "one", 1<<10, false, false)
	img := imageOfBlobs(t, [][]byte{b1}, []v1.Hash{d1}, types.OCILayer)
	reg := registrytest.New(t)
	reg.Push(t, "p:1", img)
	for _, input := range []string{reg.Ref("p:1"), layoutDir(t, img)} {
		o := opts(t)
		o.Select, o.SelectKey, o.Inspect = keepAll{}, "panicky", panicky{}
		if _, err := Open(context.Background(), input, o); !errors.Is(err, ErrPanic) {
			t.Errorf("%s: %v, want ErrPanic", input, err)
		}
	}
}
