package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

// Options are what the webhook takes besides its configuration.
type Options struct {
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Registry configures registry access (Insecure for plain-HTTP
	// registries other than localhost, Keychain, Transport).
	Registry sign.Options
	// HTTPClient talks to the server; nil means one built from
	// Config.Server (CAFile).
	HTTPClient *http.Client
	// Offline evaluates without a trust policy, registry or server, as
	// `bulwark check` does without --verify: an image is then only
	// checked for being pinned to a digest.
	Offline bool
}

// Webhook is the admission webhook.
type Webhook struct {
	cfg     *Config
	log     *slog.Logger
	now     func() time.Time
	images  *imageChecker
	feed    *feed
	metrics *metrics
	handler http.Handler
	offline bool

	ready     atomic.Bool
	feedMu    sync.Mutex // one feed poll at a time
	lastSync  atomic.Int64
	lastError atomic.Pointer[string]
	// feedReached is set once a feed poll succeeded or a snapshot was
	// loaded: until then revocations are unknown.
	feedReached atomic.Bool

	// cacheFile is where the feed state is persisted ("" for nowhere),
	// trust the fingerprint of the trust policy; savedGen and savedSince
	// are the cache generation and cursor last written (under feedMu).
	cacheFile  string
	trust      string
	savedGen   uint64
	savedSince time.Time

	refKinds refKinds // confidential.go
}

// New builds the webhook. cfg is resolved (defaults, files) if it was
// built in Go.
func New(cfg *Config, opts Options) (*Webhook, error) {
	if cfg == nil {
		return nil, errors.New("admission: no configuration")
	}
	if err := cfg.resolve(); err != nil {
		return nil, fmt.Errorf("admission config: %w", err)
	}
	if cfg.TrustPolicy == nil && !opts.Offline {
		return nil, errors.New("admission config: trust needs a trust policy file (policy) or public keys (keys)")
	}
	w := &Webhook{cfg: cfg, log: opts.Logger, now: opts.Now, metrics: newMetrics(), offline: opts.Offline}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	w.images = &imageChecker{cfg: cfg, cache: newCache(), reg: opts.Registry, now: w.now, metrics: w.metrics}
	f, err := newFeed(cfg, opts.HTTPClient)
	if err != nil {
		return nil, err
	}
	if opts.Offline {
		f = nil
	}
	w.feed = f
	if f == nil {
		w.ready.Store(true)
	} else {
		w.images.feedUnknown = func() bool { return !w.feedReached.Load() }
		if cfg.Server.CacheFile != "" {
			w.cacheFile, w.trust = cfg.path(cfg.Server.CacheFile), trustFingerprint(cfg)
			if w.loadSnapshot(w.cacheFile) {
				w.feedReached.Store(true)
			}
		}
	}
	w.handler = w.routes()
	return w, nil
}

// Config returns the resolved configuration.
func (w *Webhook) Config() *Config { return w.cfg }

// Handler serves POST /validate, POST /mutate, GET /healthz, /readyz and
// /metrics.
func (w *Webhook) Handler() http.Handler { return w.handler }

// Run polls the server's certification feed every PollInterval and
// verifies newly certified digests ahead of time, until ctx ends. Without
// a server it waits for ctx. A failed poll is logged and retried; the
// cache keeps serving.
func (w *Webhook) Run(ctx context.Context) error {
	if w.feed == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(w.cfg.Server.PollInterval)
	defer t.Stop()
	var down time.Time // when the current outage began; zero when the feed works
	for {
		err := w.Sync(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && down.IsZero():
			// Once per outage, not once per poll.
			down = time.Now()
			w.log.Warn("certification feed unreachable; deciding from the cache", "server", w.cfg.Server.URL, "err", err)
		case err != nil:
			w.log.Debug("certification feed still unreachable", "server", w.cfg.Server.URL, "err", err)
		case !down.IsZero():
			w.log.Info("certification feed back", "server", w.cfg.Server.URL, "outage", time.Since(down).Round(time.Second))
			down = time.Time{}
		}
		// Ready after the first attempt, whether or not it worked: the
		// cache and first-sight verification still decide.
		w.ready.Store(true)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sync polls the feed once and verifies the newly certified digests
// (each within the verify budget).
func (w *Webhook) Sync(ctx context.Context) error {
	if w.feed == nil {
		return errNoServer
	}
	w.feedMu.Lock()
	defer w.feedMu.Unlock()
	fctx, cancel := context.WithTimeout(ctx, w.cfg.Server.Timeout)
	entries, err := w.feed.fetch(fctx)
	cancel()
	if err != nil {
		w.metrics.feedErrors.Add(1)
		msg := err.Error()
		w.lastError.Store(&msg)
		return err
	}
	w.lastSync.Store(w.now().Unix())
	w.lastError.Store(nil)
	w.feedReached.Store(true)
	todo, changed := w.images.cache.apply(entries)
	revoked := 0
	for _, e := range entries {
		if e.Status != statusCertified {
			revoked++
		}
	}
	if changed > 0 || len(todo) > 0 {
		// Entries of the overlap that come again change nothing and are
		// not logged.
		w.log.Info("certification feed", "entries", len(entries), "changed", changed, "not_certified", revoked, "to_verify", len(todo))
	}
	var errs []error
	for _, pinned := range todo {
		if ctx.Err() != nil {
			break
		}
		err := w.images.verify(ctx, pinned)
		var ve *sign.VerificationError
		switch {
		case err == nil:
		case errors.As(err, &ve):
			w.log.Warn("certified by the server but not under this webhook's trust policy", "image", pinned, "reason", ve.Reason)
		default:
			errs = append(errs, fmt.Errorf("verifying %s ahead of time: %w", pinned, err))
		}
	}
	if err := w.saveSnapshot(); err != nil {
		// The feed worked; only a restart while the server is down would
		// miss this state.
		w.log.Warn("feed state not persisted", "err", err)
	}
	return errors.Join(errs...)
}

// Known reports whether repository@digest is in the cache of verified
// digests (and not revoked).
func (w *Webhook) Known(pinned string) bool {
	c := w.images.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.verified[pinned]
	return ok
}

// Verify verifies repository@digest now (bounded by the verify budget)
// and caches it when certified: a way to warm the cache.
func (w *Webhook) Verify(ctx context.Context, pinned string) error {
	return w.images.verify(ctx, pinned)
}
