package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// run executes the bulwark command line in process.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

var (
	realOnce   sync.Once
	realLayers []string
	realErr    error
)

// realImageLayers returns the Debian base layer and the app layer (Go binary,
// npm tree), building them once per machine; the test skips when this
// machine cannot build them (no root, debootstrap, go or npm).
func realImageLayers(t *testing.T) []string {
	t.Helper()
	realOnce.Do(func() {
		base, err := testimage.DebianLayer()
		if err != nil {
			realErr = err
			return
		}
		app, err := testimage.AppLayer()
		if err != nil {
			realErr = err
			return
		}
		realLayers = []string{base, app}
	})
	if realErr != nil {
		t.Skipf("real test image unavailable: %v", realErr)
	}
	return realLayers
}

var realHistory = []string{"debootstrap --variant=minbase bookworm", "COPY app /"}

// realDockerArchive writes the real image as a `docker save` archive.
func realDockerArchive(t *testing.T) string {
	t.Helper()
	layers := realImageLayers(t)
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := testimage.WriteDockerArchive(out, "bulwark-testapp:1", layers, realHistory); err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshot lists every path under dir, to show nothing new appeared.
func snapshot(t *testing.T, dir string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			seen[p] = true
		}
		return nil
	})
	return seen
}
