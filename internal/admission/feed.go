package admission

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Statuses in the feed (store.Certified, store.Revoked,
// store.NotCertified).
const (
	statusCertified = "certified"
)

// feedEntry is one certification from GET /api/v1/certifications.
type feedEntry struct {
	Digest     string    `json:"digest"`
	Repository string    `json:"repository"`
	Tags       []string  `json:"tags"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason"`
	Updated    time.Time `json:"updated"`
}

type feedPage struct {
	Certifications []feedEntry `json:"certifications"`
}

// feed polls the server's certification feed.
type feed struct {
	url    string
	token  string
	client *http.Client
	since  time.Time // newest Updated seen
}

func newFeed(cfg *Config, client *http.Client) (*feed, error) {
	if cfg.Server.URL == "" {
		return nil, nil
	}
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.Server.CAFile != "" {
			pem, err := os.ReadFile(cfg.path(cfg.Server.CAFile))
			if err != nil {
				return nil, fmt.Errorf("reading server CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("server CA file %s: no PEM certificate", cfg.Server.CAFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		client = &http.Client{Transport: tr}
	}
	return &feed{url: cfg.Server.URL, token: cfg.Server.Token, client: client}, nil
}

// fetch returns the certifications changed since the last fetch (all on
// the first).
func (f *feed) fetch(ctx context.Context) ([]feedEntry, error) {
	u, err := url.Parse(f.url)
	if err != nil {
		return nil, fmt.Errorf("parsing server URL: %w", err)
	}
	u = u.JoinPath("/api/v1/certifications")
	if !f.since.IsZero() {
		// Entries updated at exactly since come again: harmless, and no
		// change at the same instant is lost.
		u.RawQuery = url.Values{"since": {f.since.UTC().Format(time.RFC3339Nano)}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching certifications: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading certifications: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching certifications: server answered %s", resp.Status)
	}
	var page feedPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("decoding certifications: %w", err)
	}
	for _, e := range page.Certifications {
		if e.Updated.After(f.since) {
			f.since = e.Updated
		}
	}
	return page.Certifications, nil
}

var errNoServer = errors.New("no server configured")

// apply stores feed entries in the cache: revocations drop verified
// digests at once; tags map to digests. It returns the certified pinned
// references not yet verified.
func (c *cache) apply(entries []feedEntry) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var todo []string
	for _, e := range entries {
		old, had := c.status[e.Digest]
		c.status[e.Digest] = e
		pinned := e.Repository + "@" + e.Digest
		if e.Status != statusCertified {
			for k := range c.verified {
				if len(k) > len(e.Digest) && k[len(k)-len(e.Digest):] == e.Digest {
					delete(c.verified, k)
				}
			}
		} else if e.Repository != "" {
			if _, ok := c.verified[pinned]; !ok {
				todo = append(todo, pinned)
			}
		}
		if had {
			for _, t := range old.Tags {
				if c.tags[old.Repository+":"+t] == e.Digest {
					delete(c.tags, old.Repository+":"+t)
				}
			}
		}
		if e.Repository != "" {
			for _, t := range e.Tags {
				c.tags[e.Repository+":"+t] = e.Digest
			}
		}
	}
	return todo
}
