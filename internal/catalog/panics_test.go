package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// crashCataloger is a file cataloger, built like the built-in ones, whose
// parser has a bug that /etc/boom.lock finds.
func crashCataloger() Cataloger {
	return fileCataloger{name: "crash-cataloger", match: hasSuffix(".lock"),
		parse: func(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
			if n.Path == "/etc/boom.lock" {
				var m map[string]int
				m[string(data)]++ // a nil map write: a parser's bug
			}
			return []sbom.Package{{Name: strings.TrimSuffix(n.Path, ".lock"), Version: "1", Type: "test", Locations: []sbom.Location{in.Location(n)}}}, nil
		}}
}

// panicky panics in its own Catalog, outside any one file.
type panicky struct{}

func (panicky) Name() string { return "panicky-cataloger" }
func (panicky) Catalog(context.Context, *Input) ([]sbom.Package, error) {
	panic("a bug outside any file")
}

// TestCatalogerPanicIsAnError: a cataloger that panics on a file of an
// image (it took the process down: every cataloger runs on a goroutine of
// its own) fails that image's inventory with a *PanicError naming the
// cataloger, the file and its layer, which is image.ErrPanic; the process
// goes on and the next image, without that file, is inventoried. A panic
// outside any file names the cataloger only.
func TestCatalogerPanicIsAnError(t *testing.T) {
	build := func(files map[string]string) *image.Image {
		t.Helper()
		fsys, err := layerfs.Build(context.Background(), []layerfs.Layer{
			tarLayer(t, "sha256:base", map[string]string{"app/ok.lock": "ok", "etc/os-release": "ID=debian\nVERSION_ID=12\n"}),
			tarLayer(t, "sha256:top", files),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fsys.Close() })
		return &image.Image{FS: fsys}
	}
	opts := Options{Catalogers: append(All(), crashCataloger())}

	_, err := Image(context.Background(), build(map[string]string{"etc/boom.lock": "boom"}), opts)
	var pe *PanicError
	if !errors.As(err, &pe) || !errors.Is(err, image.ErrPanic) {
		t.Fatalf("a cataloger's panic: %v, want a *PanicError", err)
	}
	if pe.Cataloger != "crash-cataloger" || pe.Path != "/etc/boom.lock" || pe.Layer != "sha256:top" {
		t.Errorf("the panic names %+v, want crash-cataloger, /etc/boom.lock, sha256:top", pe)
	}
	for _, want := range []string{"crash-cataloger", "/etc/boom.lock", "sha256:top", "assignment to entry in nil map"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}

	s, err := Image(context.Background(), build(map[string]string{"etc/fine.lock": "fine"}), opts)
	if err != nil || s.Distro == nil || s.Distro.ID != "debian" {
		t.Fatalf("the next image: %+v, %v", s, err)
	}
	if got := describe(s.Packages); len(got) != 2 || !strings.Contains(got[0], "/app/ok") || !strings.Contains(got[1], "/etc/fine") {
		t.Errorf("the next image's packages: %v", got)
	}

	_, err = Image(context.Background(), build(map[string]string{"etc/fine.lock": "fine"}), Options{Catalogers: []Cataloger{panicky{}}})
	if !errors.As(err, &pe) || pe.Cataloger != "panicky-cataloger" || pe.Path != "" || !strings.Contains(err.Error(), "a bug outside any file") {
		t.Errorf("a panic outside any file: %v", err)
	}
}
