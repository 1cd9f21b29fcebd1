package registrytest

import (
	"crypto/subtle"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-process registry on 127.0.0.1.
type Registry struct {
	// Host is "127.0.0.1:PORT"; go-containerregistry speaks plain HTTP to it.
	Host   string
	Server *httptest.Server

	// User and Password, when set (NewWithAuth), are required by every
	// request (HTTP basic auth) and used by Push.
	User, Password string

	mu       sync.Mutex
	requests []string
}

// New starts a registry that stops when the test ends.
func New(t testing.TB) *Registry { return NewWithAuth(t, "", "") }

// NewWithAuth starts a registry that answers 401 with a Basic challenge
// unless a request carries user and password (no auth when user is "").
func NewWithAuth(t testing.TB, user, password string) *Registry {
	t.Helper()
	r := &Registry{User: user, Password: password}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Server.Close)
	r.Host = strings.TrimPrefix(r.Server.URL, "http://")
	return r
}

// BlobGets counts the blob downloads served so far.
func (r *Registry) BlobGets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.requests {
		if strings.HasPrefix(q, "GET ") && strings.Contains(q, "/blobs/") {
			n++
		}
	}
	return n
}

// auth is the remote option carrying the registry's credentials.
func (r *Registry) auth() remote.Option {
	if r.User == "" {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(&authn.Basic{Username: r.User, Password: r.Password})
}

// Ref returns host/repo:tag on this registry.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// Push writes img under repoTag ("repo:tag") and returns the reference.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, r.auth()); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref
}

// PushIndex writes a multi-platform index under repoTag.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing index %s: %v", ref, err)
	}
	return ref
}
