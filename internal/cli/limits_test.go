package cli

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestSBOMImageLimits: the limits against hostile layers are on by default
// and set from a flag or the environment (BULWARK_<FLAG>); a refused image
// leaves nothing in the cache directory.
func TestSBOMImageLimits(t *testing.T) {
	dir := t.TempDir()
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(tarBytes(t, reg("zeros", strings.Repeat("\x00", 64<<20))))
	zw.Close()
	input := layoutOf(t, filepath.Join(dir, "bomb"), bomb.Bytes())
	var small bytes.Buffer
	zw = gzip.NewWriter(&small)
	zw.Write(tarBytes(t, reg("etc/os-release", "ID=debian\n"), reg("data", strings.Repeat("x", 2<<20))))
	zw.Close()
	smallInput := layoutOf(t, filepath.Join(dir, "small"), small.Bytes())

	cases := []struct {
		name, input string
		env         map[string]string
		flags       []string
		want        string
	}{
		{"ratio by default", input, nil, nil, "--max-compression-ratio"},
		{"image total by flag", smallInput, nil, []string{"--max-image-size", "1048576"}, "--max-image-size"},
		{"image total by environment", smallInput, map[string]string{"BULWARK_MAX_IMAGE_SIZE": "1048576"}, nil, "--max-image-size"},
		// the streaming pass keeps no layer: the quota bites with --keep-layers
		{"cache quota by flag", smallInput, nil, []string{"--keep-layers", "--cache-max-size", "1048576"}, "--cache-max-size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cache := filepath.Join(t.TempDir(), "cache")
			_, stderr, code := run(t, append([]string{"sbom", c.input, "--cache-dir", cache}, c.flags...)...)
			if code != ExitError || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "layer sha256:") {
				t.Errorf("exit %d, stderr %q; want a refusal naming the layer and %s", code, stderr, c.want)
			}
			filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					t.Errorf("left in the cache: %s", p)
				}
				return nil
			})
		})
	}
}
