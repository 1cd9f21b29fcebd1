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
	"slices"
	"strconv"
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
	AuditSeq       int64       `json:"auditSeq"`
}

// feed polls the server's certification feed.
type feed struct {
	url    string
	token  string
	client *http.Client
	// since is the newest Updated seen (the cursor); overlap is how far
	// before it each poll asks again.
	since   time.Time
	overlap time.Duration
	// auditSeq is the server's audit sequence at the last poll: the
	// certification changes after it are listed whatever their time stamp
	// (a commit-ordered cursor; the time cursor and its overlap carry the
	// tag moves).
	auditSeq int64
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
	return &feed{url: cfg.Server.URL, token: cfg.Server.Token, client: client, overlap: cfg.Server.Overlap}, nil
}

// fetch returns the certifications changed since the last fetch minus
// the overlap (all on the first).
func (f *feed) fetch(ctx context.Context) ([]feedEntry, error) {
	u, err := url.Parse(f.url)
	if err != nil {
		return nil, fmt.Errorf("parsing server URL: %w", err)
	}
	u = u.JoinPath("/api/v1/certifications")
	if !f.since.IsZero() {
		// The server lists entries updated strictly after since. Its
		// Updated is taken when a transaction writes, not when it commits:
		// on PostgreSQL a transaction that took an earlier time but
		// committed after this cursor was read would never be listed
		// again (nor would a change stamped by a replica whose clock is
		// behind). So ask again for the last overlap: entries seen before
		// come again, and applying them again changes nothing.
		q := url.Values{"since": {f.since.Add(-f.overlap).UTC().Format(time.RFC3339Nano)}}
		if f.auditSeq > 0 {
			q.Set("afterAudit", strconv.FormatInt(f.auditSeq, 10))
		}
		u.RawQuery = q.Encode()
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
	if page.AuditSeq > f.auditSeq {
		f.auditSeq = page.AuditSeq
	}
	return page.Certifications, nil
}

var errNoServer = errors.New("no server configured")

// apply stores feed entries in the cache: revocations drop verified
// digests at once; tags map to digests. It is idempotent: an entry
// applied again (the feed's overlap) changes nothing. An entry is the
// server's current state of its digest, so it replaces what the cache
// holds whatever its Updated. It returns the certified pinned references
// not yet verified and how many entries changed the cache.
func (c *cache) apply(entries []feedEntry) (todo []string, changed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range entries {
		old, had := c.status[e.Digest]
		if !had || !sameEntry(old, e) {
			changed++
			c.gen++
		}
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
	return todo, changed
}

func sameEntry(a, b feedEntry) bool {
	return a.Digest == b.Digest && a.Repository == b.Repository && a.Status == b.Status && a.Reason == b.Reason &&
		a.Updated.Equal(b.Updated) && slices.Equal(a.Tags, b.Tags)
}
