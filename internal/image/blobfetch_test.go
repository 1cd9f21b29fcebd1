package image_test

import (
	"context"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
)

// hostileRegistry serves pushed images, but answers GET for blob target
// with serve instead; it counts the blob GETs it rewrote.
type hostileRegistry struct {
	host   string
	target string // "sha256:..."
	serve  func(w http.ResponseWriter, r *http.Request)
	hits   atomic.Int64
}

func newHostileRegistry(t *testing.T) *hostileRegistry {
	h := &hostileRegistry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && h.target != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+h.target) {
			h.hits.Add(1)
			h.serve(w, r)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.host = strings.TrimPrefix(srv.URL, "http://")
	return h
}

func (h *hostileRegistry) push(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(h.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// registryOpenings are the two ways a registry layer is read: the streaming
// pass and the layer cache (--keep-layers).
func registryOpenings(t *testing.T) map[string]image.Options {
	cache := func() string { return filepath.Join(t.TempDir(), "cache") }
	return map[string]image.Options{"streaming": streamingOpts(t, cache()), "keep-layers": {CacheDir: cache()}}
}

// TestRegistryLayerContentChecked: registry blobs are no longer hashed as
// they are downloaded (the diffID is checked instead, one hash, not two),
// so a registry that serves other bytes under a layer's digest, and a
// config that names another diffID than its layer's, must still be
// refused, in both ways of reading, and leave nothing in the cache.
func TestRegistryLayerContentChecked(t *testing.T) {
	base, top := baseAndApp(t, "hostile")
	honest := imageOf(t, false, base, top)
	layers, _ := honest.Layers()
	topDigest, _ := layers[1].Digest()
	other := compress(t, tarBlob(t, tent{name: "var/lib/dpkg/status", body: "Package: innocent\nStatus: install ok installed\nVersion: 1\n\n"}), false)

	// a config that lies about the top layer's diffID
	cf, _ := honest.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	lying, err := mutate.ConfigFile(honest, cf)
	if err != nil {
		t.Fatal(err)
	}

	for way, o := range registryOpenings(t) {
		t.Run(way, func(t *testing.T) {
			reg := newHostileRegistry(t)
			swapped := reg.push(t, "swapped:1", honest)
			lies := reg.push(t, "lies:1", lying)
			reg.target = topDigest.String()
			reg.serve = func(w http.ResponseWriter, _ *http.Request) { // chunked: no Content-Length to give it away
				w.(http.Flusher).Flush()
				w.Write(other)
			}
			_, err := image.Open(context.Background(), swapped, o)
			if err == nil || !strings.Contains(err.Error(), "uncompressed content has digest") || !strings.Contains(err.Error(), topDigest.String()) {
				t.Errorf("blob swapped by the registry: err = %v, want the diffID mismatch naming the layer", err)
			}
			if reg.hits.Load() == 0 {
				t.Fatal("the swapped blob was never requested")
			}
			reg.target = ""
			_, err = image.Open(context.Background(), lies, o)
			if err == nil || !strings.Contains(err.Error(), "the image config says sha256:abab") {
				t.Errorf("config naming another diffID: err = %v, want the diffID mismatch", err)
			}
			if _, total := cacheBytes(t, o.CacheDir); total != 0 {
				t.Errorf("refused images left %d bytes in the cache", total)
			}
		})
	}
}

// TestRegistryBlobBounded: no more than the manifest's size of a blob is
// read, whatever the registry sends; a Content-Length that differs from it,
// or a redirect of the download to a link-local address (a cloud metadata
// service), is refused.
func TestRegistryBlobBounded(t *testing.T) {
	base, top := baseAndApp(t, "bounded")
	img := imageOf(t, false, base, top)
	layers, _ := img.Layers()
	d, _ := layers[1].Digest()
	blob, _ := layers[1].Compressed()
	raw, _ := io.ReadAll(blob)
	var sent atomic.Int64
	cases := map[string]struct {
		serve func(w http.ResponseWriter, r *http.Request)
		want  string // "" when the image opens
	}{
		"endless body": {
			serve: func(w http.ResponseWriter, _ *http.Request) {
				w.(http.Flusher).Flush()
				w.Write(raw)
				for sent.Store(0); sent.Load() < 1<<30; sent.Add(64 << 10) {
					if _, err := w.Write(make([]byte, 64<<10)); err != nil {
						return
					}
				}
			},
		},
		"Content-Length not the manifest's": {
			serve: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(raw)-1))
				w.Write(raw[:len(raw)-1])
			},
			want: "Content-Length",
		},
		"redirect to a metadata service": {
			serve: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
			},
			want: `private or link-local address "169.254.169.254" refused`,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			reg := newHostileRegistry(t)
			ref := reg.push(t, "app:1", img)
			reg.target, reg.serve = d.String(), c.serve
			got, err := image.Open(context.Background(), ref, streamingOpts(t, filepath.Join(t.TempDir(), "cache")))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				got.Close()
				if n := sent.Load(); n >= 1<<30 {
					t.Errorf("the registry sent %d bytes past the blob", n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

type basicKeychain struct{ user, password string }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}

// TestRegistryStreamingAuthenticated: the streaming pass downloads blobs
// from a registry that requires credentials, with the keychain's.
func TestRegistryStreamingAuthenticated(t *testing.T) {
	reg := registrytest.NewWithAuth(t, "robot", "s3cret")
	base, top := baseAndApp(t, "authed")
	reg.Push(t, "app:1", imageOf(t, false, base, top))
	o := streamingOpts(t, filepath.Join(t.TempDir(), "cache"))
	img := open(t, reg.Ref("app:1"), func() image.Options { o.Keychain = basicKeychain{"robot", "s3cret"}; return o }())
	if img.Stats.LayersStreamed != 2 {
		t.Errorf("stats = %+v, want 2 layers streamed", img.Stats)
	}
	if !strings.Contains(inventory(t, img), "pkg deb authed 1.0") {
		t.Errorf("the app layer's package is missing:\n%s", inventory(t, img))
	}
	o.Keychain = basicKeychain{"robot", "wrong"}
	o.CacheDir = filepath.Join(t.TempDir(), "cache")
	if _, err := image.Open(context.Background(), reg.Ref("app:1"), o); err == nil {
		t.Error("wrong credentials: the image opened")
	}
}

// cacheBytes lists the files under a cache directory and their total size.
func cacheBytes(t testing.TB, dir string) ([]string, int64) {
	t.Helper()
	var names []string
	var total int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			names = append(names, p)
			total += fi.Size()
		}
		return nil
	})
	return names, total
}
