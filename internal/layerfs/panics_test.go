package layerfs

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// panicAt reads like r until off, where it panics: a source with a bug
// that a crafted layer reaches (the reader of a layer is the image
// source's code, not layerfs's).
type panicAt struct {
	r   *bytes.Reader
	off int64
}

func (p panicAt) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > p.off {
		var m map[string]int
		m["boom"]++ // a nil map write, as the cataloger bug the attacker review found
	}
	return p.r.ReadAt(b, off)
}

// TestPanicIsAnError: a panic in a layer's index goroutine or in a file's
// hash goroutine is Build's or FillDigests' error (ErrPanic, naming the
// layer or file), not the end of the process (before, the test binary
// died: a hostile image took the server down).
func TestPanicIsAnError(t *testing.T) {
	good := layerTar(t, file("bin/tool", "#!/bin/sh\necho hi\n"))
	bad := layerTar(t, file("etc/a", strings.Repeat("a", 4096)), file("etc/b", "b"))
	_, err := Build(context.Background(), []Layer{
		{DiffID: "sha256:good", Data: bytes.NewReader(good), Size: int64(len(good))},
		{DiffID: "sha256:bad", Data: panicAt{bytes.NewReader(bad), 1024}, Size: int64(len(bad))},
	})
	if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "sha256:bad") {
		t.Fatalf("Build over a panicking layer: %v, want ErrPanic naming sha256:bad", err)
	}

	f, err := Build(context.Background(), []Layer{{DiffID: "sha256:tool", Data: bytes.NewReader(good), Size: int64(len(good))}})
	if err != nil {
		t.Fatal(err)
	}
	f.layers[0].Data = panicAt{bytes.NewReader(good), 0} // its content read panics from now on
	if err := f.FillDigests(context.Background(), DigestAll); !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "bin/tool") {
		t.Fatalf("FillDigests over a panicking read: %v, want ErrPanic naming /bin/tool", err)
	}
}
