package trust

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Federation bounds.
const (
	maxBundle          = 1 << 20
	minFederationEvery = time.Minute
	maxFederationEvery = time.Hour
)

// Peer is another trust domain whose bundle endpoint (https_web profile)
// this server follows.
type Peer struct {
	TrustDomain spiffeid.TrustDomain
	URL         string
}

// ParsePeer reads "TRUST_DOMAIN=https://host/path".
func ParsePeer(s string) (Peer, error) {
	name, u, ok := strings.Cut(s, "=")
	if !ok {
		return Peer{}, fmt.Errorf("federation peer %q: want TRUST_DOMAIN=https://host/path", s)
	}
	td, err := spiffeid.TrustDomainFromString(name)
	if err != nil {
		return Peer{}, fmt.Errorf("federation peer %q: %w", s, err)
	}
	if !strings.HasPrefix(u, "https://") {
		return Peer{}, fmt.Errorf("federation peer %q: the bundle endpoint must be an https:// URL", s)
	}
	return Peer{TrustDomain: td, URL: u}, nil
}

// Federation keeps the bundles of federated trust domains: each peer's
// bundle endpoint is fetched at start and then as its refresh hint says
// (one minute to one hour); a failed fetch keeps the last good bundle.
type Federation struct {
	Peers []Peer
	// Client fetches (the server's egress-checked client).
	Client *http.Client
	Log    *slog.Logger

	mu      sync.RWMutex
	bundles map[spiffeid.TrustDomain]*spiffebundle.Bundle
}

// Bundles returns the federated bundles held now.
func (f *Federation) Bundles() []*spiffebundle.Bundle {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*spiffebundle.Bundle, 0, len(f.bundles))
	for _, b := range f.bundles {
		out = append(out, b)
	}
	return out
}

// Run follows every peer until ctx ends.
func (f *Federation) Run(ctx context.Context) error {
	if f.Log == nil {
		f.Log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for _, p := range f.Peers {
		wg.Add(1)
		go func() { defer wg.Done(); f.follow(ctx, p) }()
	}
	wg.Wait()
	return nil
}

func (f *Federation) follow(ctx context.Context, p Peer) {
	for {
		every := minFederationEvery
		b, err := f.Fetch(ctx, p)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			f.Log.Warn("fetching a federated bundle", "trustDomain", p.TrustDomain.Name(), "error", err)
		default:
			f.mu.Lock()
			if f.bundles == nil {
				f.bundles = map[spiffeid.TrustDomain]*spiffebundle.Bundle{}
			}
			f.bundles[p.TrustDomain] = b
			f.mu.Unlock()
			if h, ok := b.RefreshHint(); ok {
				every = min(max(h, minFederationEvery), maxFederationEvery)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Fetch reads one peer's bundle.
func (f *Federation) Fetch(ctx context.Context, p Peer) (*spiffebundle.Bundle, error) {
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching the bundle of %q: %w", p.TrustDomain.Name(), err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the bundle of %q: %w", p.TrustDomain.Name(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the bundle of %q: %s", p.TrustDomain.Name(), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBundle+1))
	if err != nil {
		return nil, fmt.Errorf("reading the bundle of %q: %w", p.TrustDomain.Name(), err)
	}
	if len(body) > maxBundle {
		return nil, fmt.Errorf("the bundle of %q is larger than %d bytes", p.TrustDomain.Name(), maxBundle)
	}
	b, err := spiffebundle.Parse(p.TrustDomain, body)
	if err != nil {
		return nil, fmt.Errorf("reading the bundle of %q: %w", p.TrustDomain.Name(), err)
	}
	if len(b.X509Authorities()) == 0 && len(b.JWTAuthorities()) == 0 {
		return nil, fmt.Errorf("the bundle of %q holds no key", p.TrustDomain.Name())
	}
	return b, nil
}
