package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// blobFetcher downloads a repository's layer blobs for the streaming pass
// without hashing them. go-containerregistry checks a blob's digest as it
// is read; the streaming pass checks the diffID of what the blob
// decompresses to, which the config names, and the config is checked
// against the manifest's digest, so the uncompressed content is bound to
// the image either way. Checking both would hash every layer twice (the
// compressed and the uncompressed bytes): on a 2 GB image, 1.2 s of CPU.
// Only layers whose diffID is known come this way (streamed or decompressed
// into the layer cache: both check it).
type blobFetcher struct {
	ctx  context.Context
	repo name.Repository
	opts *Options

	once   sync.Once
	client *http.Client
	err    error
}

func newBlobFetcher(ctx context.Context, repo name.Repository, opts *Options) *blobFetcher {
	return &blobFetcher{ctx: ctx, repo: repo, opts: opts}
}

// init authenticates once for the image's layers, as go-containerregistry
// does for each fetch: the same transport (retries, the caller's), the same
// keychain, pull scope on the repository.
func (f *blobFetcher) init() {
	auth, err := authn.Resolve(f.ctx, f.opts.Keychain, f.repo)
	if err != nil {
		f.err = fmt.Errorf("resolving credentials for %s: %w", f.repo, err)
		return
	}
	inner := f.opts.Transport
	if inner == nil {
		inner = remote.DefaultTransport
	}
	if _, ok := inner.(*transport.Wrapper); !ok {
		inner = transport.NewRetry(inner)
	}
	tr, err := transport.NewWithContext(f.ctx, f.repo.Registry, auth, inner, []string{f.repo.Scope(transport.PullScope)})
	if err != nil {
		f.err = err
		return
	}
	f.client = &http.Client{Transport: tr, CheckRedirect: refusePrivateRedirect}
}

// open GETs blob h, of size bytes as the manifest says: no more than that
// is read from the registry, whatever it sends.
func (f *blobFetcher) open(h v1.Hash, size int64) (io.ReadCloser, error) {
	f.once.Do(f.init)
	if f.err != nil {
		return nil, f.err
	}
	u := url.URL{Scheme: f.repo.Scheme(), Host: f.repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/%s", f.repo.RepositoryStr(), h)}
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, redactURL(err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	if size <= 0 {
		size = f.opts.Limits.MaxLayerSize
	} else if resp.ContentLength >= 0 && resp.ContentLength != size {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: Content-Length %d, the manifest says %d bytes", u.String(), resp.ContentLength, size)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, size), resp.Body}, nil
}

// refusePrivateRedirect refuses a redirect to another host given as a
// private, loopback or link-local address (a registry sending the client
// to a cloud metadata service), as go-containerregistry's fetches do.
func refusePrivateRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if len(via) == 0 {
		return nil
	}
	from, to := via[0].URL.Hostname(), req.URL.Hostname()
	if to == from {
		return nil
	}
	if a, err := netip.ParseAddr(to); err == nil {
		a = a.Unmap()
		if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() {
			return fmt.Errorf("redirect from %q to private or link-local address %q refused", from, to)
		}
	}
	return nil
}

// redactURL drops the query (pre-signed URLs carry credentials there)
// from a request error's URL.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.RawQuery != "" {
			u.RawQuery = "REDACTED"
			ue.URL = u.String()
		}
	}
	return err
}
