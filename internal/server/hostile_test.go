package server

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// imagePage is what TestServerHostileImage reads of an image's page.
type imagePage struct {
	Packages int `json:"packages"`
	Distro   struct {
		ID string `json:"id"`
	} `json:"distro"`
}

// TestServerHostileImage: attacker (1), who pushes to a watched registry,
// and attacker (3), who writes DATA_DIR. An image whose first entry is a
// regular file of mode 040755 with a file under it panicked the server
// (layerfs took the mode's kind for the entry's). It is now scanned, its
// package found under that path. Then every cached result is replaced by
// bytes that claim huge counts and sizes: the next scan of the image
// reads the layer again (the damaged entries dropped) and gives the same
// answer; the server stays up.
func TestServerHostileImage(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	osRelease := "ID=debian\nVERSION_ID=\"12\"\n"
	tw.WriteHeader(&tar.Header{Name: "etc", Typeflag: tar.TypeReg, Mode: 0o40755, Size: 1})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(osRelease))})
	tw.Write([]byte(osRelease))
	status := dpkgEntry("libc6", "2.36-9+deb12u4")
	tw.WriteHeader(&tar.Header{Name: "var/lib/dpkg/status", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(status))})
	tw.Write([]byte(status))
	tw.Close()
	raw := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.Architecture, cf.OS, cf.Created = "amd64", "linux", v1.Time{Time: time.Now().UTC()}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New(t)
	reg.Push(t, "team/hostile:1", img)
	digest, _ := img.Digest()

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, _ := startServer(t, dir)
	viewer, operator := roleTokens(c, admin)
	waitScan(t, c, operator.Token, reg.Ref("team/hostile:1"))
	var first imagePage
	c.json("GET", "/api/v1/images/"+digest.String(), viewer.Token, nil, http.StatusOK, &first)
	if first.Packages != 1 || first.Distro.ID != "debian" {
		t.Fatalf("the hostile image: %+v", first)
	}

	results := filepath.Join(dir, "cache", "results", "sha256")
	entries, err := os.ReadDir(results)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no cached results: %v", err)
	}
	crafted := append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff}, 64)...) // a zstd magic, then nonsense
	for _, e := range entries {
		if err := os.WriteFile(filepath.Join(results, e.Name()), crafted, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitScan(t, c, operator.Token, reg.Ref("team/hostile:1"))
	var again imagePage
	c.json("GET", "/api/v1/images/"+digest.String(), viewer.Token, nil, http.StatusOK, &again)
	if again.Packages != 1 || again.Distro.ID != "debian" {
		t.Errorf("after the cache was damaged: %+v, want %+v", again, first)
	}
	_, metrics := c.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(metrics), "bulwark_layers_streamed_total 2\n") {
		t.Errorf("the damaged result was not read again:\n%s", metrics)
	}
	if code, _ := c.do("GET", "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
}
