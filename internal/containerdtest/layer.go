package containerdtest

import (
	"archive/tar"
	"bytes"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is ImageOf for a test: it fails the test on error.
func Image(t testing.TB, files map[string][]byte, entrypoint ...string) v1.Image {
	t.Helper()
	img, err := ImageOf(files, entrypoint)
	if err != nil {
		t.Fatalf("building a test image: %v", err)
	}
	return img
}

// ImageOf is a one-layer linux image for the machine's architecture (the
// one a test's static binaries are built for) of files: path without the
// leading slash -> content, mode 0755 so a binary runs; a path ending in /
// is a directory; parent directories are made, mode 1777 so a probe
// running as any user can write there. entrypoint is the image's
// (none when empty). Different content makes a different digest; the
// same files make the same digest.
func ImageOf(files map[string][]byte, entrypoint []string) (v1.Image, error) {
	layer, err := layerOf(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = entrypoint
	return mutate.ConfigFile(img, cf)
}

// layerOf is a layer of files (0755) and their directories (1777), in
// path order.
func layerOf(files map[string][]byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		isDir := strings.HasSuffix(p, "/")
		var parents []string
		for d := strings.TrimSuffix(p, "/"); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			if !isDir && d == p {
				continue // the file itself
			}
			if dirs[d] {
				break
			}
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := tw.WriteHeader(&tar.Header{Name: parents[i] + "/", Typeflag: tar.TypeDir, Mode: 0o1777}); err != nil {
				return nil, err
			}
		}
		if isDir {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(files[p]))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[p]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}
