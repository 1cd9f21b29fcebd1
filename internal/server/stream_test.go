package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// privateKeyPEM is a throw-away private key, for a secret to find.
func privateKeyPEM(t *testing.T) string {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestServerSharedBaseReadOnce: the server scans two images that share a
// base layer holding a private key. The second scan takes the base from
// the layer results cache (the metrics count it, the registry sees no
// second download of it) and still reports the key; no decompressed layer
// is left under the data directory, only the small per-layer results.
func TestServerSharedBaseReadOnce(t *testing.T) {
	base := layerOf(t, map[string]string{
		"etc/os-release":       "ID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status":  dpkgEntry("libc6", "2.36-9+deb12u4"),
		"root/.ssh/id_ed25519": privateKeyPEM(t),
	})
	reg := registrytest.New(t)
	var digests []string
	for _, app := range []string{"one", "two"} {
		img, err := mutate.AppendLayers(empty.Image, base, layerOf(t, map[string]string{
			"app/node_modules/" + app + "/package.json": `{"name": "` + app + `", "version": "1.0.0"}`,
		}))
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf.Architecture, cf.OS = "amd64", "linux"
		cf.Created = v1.Time{Time: time.Now().UTC()}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		reg.Push(t, "team/"+app+":1", img)
		d, _ := img.Digest()
		digests = append(digests, d.String())
	}

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, _ := startServer(t, dir)
	viewer, operator := roleTokens(c, admin)

	waitScan(t, c, operator.Token, reg.Ref("team/one:1"))
	gets := reg.BlobGets()
	waitScan(t, c, operator.Token, reg.Ref("team/two:1"))
	if got := reg.BlobGets() - gets; got != 2 {
		t.Errorf("the second scan fetched %d blobs, want 2 (its config and its own layer)", got)
	}
	_, metrics := c.do("GET", "/metrics", "", nil)
	for _, want := range []string{"bulwark_layers_streamed_total 3\n", "bulwark_layers_cached_total 1\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	for _, d := range digests {
		code, body := c.do("GET", "/api/v1/images/"+d, viewer.Token, nil)
		if code != http.StatusOK {
			t.Fatalf("image %s: %d %s", d, code, body)
		}
		if !strings.Contains(string(body), "/root/.ssh/id_ed25519") {
			t.Errorf("image %s: the decision does not name the key in the shared base:\n%s", d, body)
		}
	}

	cache := filepath.Join(dir, "cache")
	layers, _ := os.ReadDir(filepath.Join(cache, "layers", "sha256"))
	for _, l := range layers {
		t.Errorf("decompressed layer left on disk: %s", l.Name())
	}
	results, err := os.ReadDir(filepath.Join(cache, "results", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Errorf("%d layer results cached, want 3 (the base once)", len(results))
	}
	for _, r := range results {
		if fi, _ := r.Info(); fi.Size() > 64<<10 {
			t.Errorf("layer result %s is %d bytes", r.Name(), fi.Size())
		}
	}
}

// TestServerResultsCacheQuota: the server's layer results are bounded by
// its cache quota, least recently used first. Each image's one layer keeps
// a 1.3 MiB dpkg database that hardly compresses; with a 2 MiB quota (the
// cache reserves in 1 MiB steps) the second scan evicts the first image's
// result, and the cache never holds more than the quota.
func TestServerResultsCacheQuota(t *testing.T) {
	reg := registrytest.New(t)
	for _, app := range []string{"one", "two"} {
		noise := make([]byte, 1<<20)
		rand.Read(noise)
		status := dpkgEntry(app, "1.0") + "Description: " + base64.StdEncoding.EncodeToString(noise) + "\n"
		img, err := mutate.AppendLayers(empty.Image, layerOf(t, map[string]string{"var/lib/dpkg/status": status}))
		if err != nil {
			t.Fatal(err)
		}
		reg.Push(t, "team/"+app+":1", img)
	}
	dir := t.TempDir()
	admin := bootstrap(t, dir)
	const quota = 2 << 20
	c, _ := startServerWith(t, dir, func(cfg *Config) {
		cfg.ImageLimits = image.Limits{CacheMaxSize: quota}
	})
	_, operator := roleTokens(c, admin)
	results := filepath.Join(dir, "cache", "results", "sha256")
	cached := func() (names []string, total int64) {
		des, _ := os.ReadDir(results)
		for _, de := range des {
			fi, _ := de.Info()
			names, total = append(names, de.Name()), total+fi.Size()
		}
		return names, total
	}
	waitScan(t, c, operator.Token, reg.Ref("team/one:1"))
	first, total := cached()
	if len(first) != 1 || total < 1<<20 {
		t.Fatalf("after the first scan the cache holds %v (%d bytes), want one result of over 1 MiB", first, total)
	}
	waitScan(t, c, operator.Token, reg.Ref("team/two:1"))
	second, total := cached()
	if total > quota {
		t.Errorf("the cache holds %d bytes, quota %d", total, quota)
	}
	if len(second) != 1 || second[0] == first[0] {
		t.Errorf("after the second scan the cache holds %v, want only the second image's result (the first evicted)", second)
	}
}
