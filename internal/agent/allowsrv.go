package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// Where a container's allowlist came from (ContainerInfo.Allowlist, the
// heartbeat's containers, the status file).
const (
	// SourceServer: the server's scan of the digest, asked for now.
	SourceServer = "server"
	// SourceServerCache: the server's scan, as an earlier answer kept on
	// disk (a digest's content never changes, so neither does its table).
	SourceServerCache = "server-cache"
	// SourceInventory: an inventory in --inventory-dir.
	SourceInventory = "inventory-dir"
	// SourceContent: the image's layers in containerd's content store on
	// this node, hashed by the agent.
	SourceContent = "content-store"
)

// Allowlist timing: one request waits at most allowTimeout (the container
// waits to be watched meanwhile); an unreachable server is not asked again
// for allowDown; a list not from the server is replaced by the server's,
// when it answers, at the first adoption of its digest after allowRetry.
const (
	allowTimeout  = 5 * time.Second
	allowDown     = 30 * time.Second
	maxAllowReply = 256 << 20
)

// allowRetry is how long a list made on the node stands before the server
// is asked again (a variable for tests).
var allowRetry = time.Minute

// AllowlistServer answers the allowlist of a manifest digest (a Sender).
type AllowlistServer interface {
	Allowlist(ctx context.Context, digest string) (*agentproto.Allowlist, error)
}

// AllowlistStats count the lists made, by source, and the fallbacks: lists
// made on the node because the server did not answer one.
type AllowlistStats struct {
	Server, ServerCache, Inventory, Content int64
	// Fallbacks: by why the server gave none ("refused": it does not
	// know the digest, will not say, or refused the token; "unreachable":
	// no answer, a timeout or another error status; "invalid": its answer
	// could not be used).
	Refused, Unreachable, Invalid int64
}

// allowState is the agent's side of the server's allowlists.
type allowState struct {
	server, cache, inventory, content atomic.Int64
	refused, unreachable, invalid     atomic.Int64

	mu        sync.Mutex
	downUntil time.Time
	madeAt    map[string]time.Time // digest -> when a list not from the server was made
}

func (s *allowState) stats() AllowlistStats {
	return AllowlistStats{Server: s.server.Load(), ServerCache: s.cache.Load(), Inventory: s.inventory.Load(), Content: s.content.Load(),
		Refused: s.refused.Load(), Unreachable: s.unreachable.Load(), Invalid: s.invalid.Load()}
}

func (s *allowState) made(l *allowlist.List) {
	switch l.Source {
	case SourceServer:
		s.server.Add(1)
	case SourceServerCache:
		s.cache.Add(1)
	case SourceInventory:
		s.inventory.Add(1)
	default:
		s.content.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.madeAt == nil {
		s.madeAt = map[string]time.Time{}
	}
	if l.Source == SourceServer || l.Source == SourceServerCache {
		delete(s.madeAt, l.Image)
	} else {
		s.madeAt[l.Image] = time.Now()
	}
}

// forget drops what is known of digest, whose list is no longer kept.
func (s *allowState) forget(digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.madeAt, digest)
}

// postpone puts off asking the server for digest again by allowRetry.
func (s *allowState) postpone(digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.madeAt[digest]; ok {
		s.madeAt[digest] = time.Now()
	}
}

// retryDue reports whether cached list l, made on the node, should be
// asked of the server again.
func (s *allowState) retryDue(l *allowlist.List) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.madeAt[l.Image]
	return ok && time.Since(at) >= allowRetry && time.Now().After(s.downUntil)
}

// fallbackError says why the server gave no list; kind is refused,
// unreachable or invalid.
type fallbackError struct {
	kind string
	err  error
}

func (e *fallbackError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *fallbackError) Unwrap() error { return e.err }

// fromServer builds the list of img (target digest) from the server's
// answer for its manifest, or from the disk copy of an earlier answer.
// It returns (nil, nil) when the agent has no server.
func (a *Agent) fromServer(ctx context.Context, img client.Image, digest string, local allowlist.Config) (*allowlist.List, error) {
	if a.cfg.Allowlists == nil {
		return nil, nil
	}
	asked, err := manifestDigest(ctx, img)
	if err != nil {
		return nil, &fallbackError{"invalid", err}
	}
	ans, src := a.cachedAllowlist(asked), SourceServerCache
	if ans == nil {
		if ans, err = a.askServer(ctx, asked); err != nil {
			return nil, err
		}
		src = SourceServer
		a.keepAllowlist(asked, ans)
	}
	cfg := allowlist.Config{Entrypoint: ans.Entrypoint, Cmd: ans.Cmd, Env: ans.Env}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		cfg = local // the server stored no config
	}
	l, err := allowlist.FromInventory(digest, ans.Files, cfg)
	if err != nil {
		return nil, &fallbackError{"invalid", fmt.Errorf("the server's file table of %s: %w", asked, err)}
	}
	l.Source = src
	return l, nil
}

// askServer asks the server, unless it was found unreachable less than
// allowDown ago.
func (a *Agent) askServer(ctx context.Context, digest string) (*agentproto.Allowlist, error) {
	a.allow.mu.Lock()
	down := time.Now().Before(a.allow.downUntil)
	a.allow.mu.Unlock()
	if down {
		return nil, &fallbackError{"unreachable", errors.New("the server did not answer a moment ago")}
	}
	ctx, cancel := context.WithTimeout(ctx, allowTimeout)
	defer cancel()
	ans, err := a.cfg.Allowlists.Allowlist(ctx, digest)
	var se *ServerError
	var inv *invalidAnswerError
	switch {
	case err == nil:
		return ans, nil
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden || se.Status == http.StatusNotFound):
		return nil, &fallbackError{"refused", err} // it answered: not down
	case errors.As(err, &inv):
		return nil, &fallbackError{"invalid", err}
	}
	a.allow.mu.Lock()
	a.allow.downUntil = time.Now().Add(allowDown)
	a.allow.mu.Unlock()
	return nil, &fallbackError{"unreachable", err}
}

// noteFallback logs and counts a list made on the node although the agent
// has a server.
func (a *Agent) noteFallback(digest string, l *allowlist.List, err error) {
	kind := "invalid"
	var fe *fallbackError
	if errors.As(err, &fe) {
		kind = fe.kind
	}
	switch kind {
	case "refused":
		a.allow.refused.Add(1)
	case "unreachable":
		a.allow.unreachable.Add(1)
	default:
		a.allow.invalid.Add(1)
	}
	a.log.Warn("the allowlist is not the server's: made on this node instead", "image", digest, "source", l.Source,
		"reason", err.Error(), "retry_after", allowRetry.String())
}

// manifestDigest is the digest the server scanned: img's manifest for this
// platform when img is an index (the server stores per-platform
// manifests), else img's own.
func manifestDigest(ctx context.Context, img client.Image) (string, error) {
	t := img.Target()
	if !images.IsIndexType(t.MediaType) {
		return t.Digest.String(), nil
	}
	var found []ocispec.Descriptor
	children := images.LimitManifests(images.FilterPlatforms(images.ChildrenHandler(img.ContentStore()), platforms.Default()), platforms.Default(), 1)
	err := images.Walk(ctx, images.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsManifestType(d.MediaType) {
			found = append(found, d)
			return nil, nil
		}
		return children.Handle(ctx, d)
	}), t)
	if err != nil {
		return "", fmt.Errorf("finding the manifest of index %s: %w", t.Digest, err)
	}
	if len(found) == 0 {
		return "", fmt.Errorf("index %s has no manifest for %s", t.Digest, platforms.Format(platforms.DefaultSpec()))
	}
	return found[0].Digest.String(), nil
}

// invalidAnswerError is an answer of the server that cannot be used.
type invalidAnswerError struct{ err error }

func (e *invalidAnswerError) Error() string { return e.err.Error() }
func (e *invalidAnswerError) Unwrap() error { return e.err }

// Allowlist asks the server for the allowlist of digest, as this node
// (GET /api/v1/agent/allowlists/{digest}?node=NAME).
func (s *Sender) Allowlist(ctx context.Context, digest string) (*agentproto.Allowlist, error) {
	u := s.cfg.URL + agentproto.AllowlistPath + url.PathEscape(digest) + "?node=" + url.QueryEscape(s.cfg.Node)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("asking %q: %w", u, err)
	}
	token := s.token()
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking %q: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		s.cfg.Tokens.Refused(token)
	}
	if resp.StatusCode != http.StatusOK {
		reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody))
		return nil, &ServerError{Status: resp.StatusCode, Body: strings.TrimSpace(string(reply))}
	}
	var ans agentproto.Allowlist
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxAllowReply))
	if err := dec.Decode(&ans); err != nil {
		return nil, &invalidAnswerError{fmt.Errorf("decoding the allowlist of %s: %w", digest, err)}
	}
	if err := ans.Validate(digest); err != nil {
		return nil, &invalidAnswerError{fmt.Errorf("checking the allowlist of %s: %w", digest, err)}
	}
	return &ans, nil
}

// writeAllowlistMetrics writes the allowlist counters (metrics.go).
func writeAllowlistMetrics(w io.Writer, st AllowlistStats) {
	fmt.Fprintf(w, "# HELP bulwark_agent_allowlists_total Allowlists made, by source (server, server-cache, inventory-dir, content-store).\n# TYPE bulwark_agent_allowlists_total counter\n")
	for _, s := range []struct {
		name string
		v    int64
	}{{SourceServer, st.Server}, {SourceServerCache, st.ServerCache}, {SourceInventory, st.Inventory}, {SourceContent, st.Content}} {
		fmt.Fprintf(w, "bulwark_agent_allowlists_total{source=%q} %d\n", s.name, s.v)
	}
	fmt.Fprintf(w, "# HELP bulwark_agent_allowlist_fallbacks_total Allowlists made on the node because the server gave none, by why.\n# TYPE bulwark_agent_allowlist_fallbacks_total counter\n")
	fmt.Fprintf(w, "bulwark_agent_allowlist_fallbacks_total{reason=\"refused\"} %d\nbulwark_agent_allowlist_fallbacks_total{reason=\"unreachable\"} %d\nbulwark_agent_allowlist_fallbacks_total{reason=\"invalid\"} %d\n",
		st.Refused, st.Unreachable, st.Invalid)
}

// addAllowlistFlags adds the flag of the allowlists' disk cache.
func addAllowlistFlags(fs *pflag.FlagSet) *string {
	return fs.String("allowlist-cache-dir", "/var/lib/bulwark-agent/allowlists", "where the server's allowlists are kept per digest (with --server; \"\": in memory only)")
}

// rules is c's compiled allowlist: the one it was adopted with, or the
// one that replaced it while it runs.
func (c *container) rules() *allowlist.Compiled {
	if r := c.relisted.Load(); r != nil {
		return r
	}
	return c.compiled
}

// listSource is where c's allowlist came from; "" when it has none.
func (c *container) listSource() string {
	if r := c.rules(); r != nil && r.List != nil {
		return r.List.Source
	}
	return ""
}
