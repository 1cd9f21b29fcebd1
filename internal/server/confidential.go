package server

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/instance"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// DefaultInstanceSweep is how often confidential instances are swept for
// staleness and the collateral directory is looked at.
const DefaultInstanceSweep = 30 * time.Second

// confidential builds the instance tracker and its sweeper from cfg: the
// collateral directory (or the vendors' roots alone), the instance policy,
// and the keys whose reference attestations are believed.
func confidential(ctx context.Context, cfg *Config, st *store.Store, auditor *api.Auditor, signer sign.Signer, opts sign.Options, log *slog.Logger) (*instance.Tracker, *instance.Sweeper, error) {
	var v *attest.Verifier
	var err error
	if cfg.AttestCollateral != "" {
		v, err = instance.LoadVerifier(cfg.AttestCollateral, attest.Options{})
	} else {
		v, err = attest.New(attest.Options{})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("confidential computing collateral: %w", err)
	}
	var pol instance.Policy
	if cfg.AttestPolicy != "" {
		if pol, err = instance.LoadPolicy(cfg.AttestPolicy); err != nil {
			return nil, nil, err
		}
	}
	keys := publicKeys(signer)
	for _, f := range cfg.AttestKeys {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("reading reference key: %w", err)
		}
		k, err := sign.LoadPublicKey(b)
		if err != nil {
			return nil, nil, fmt.Errorf("reading reference key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	refs := &referenceCache{st: st, keys: keys, opts: opts, m: map[string]refEntry{}}
	tr, err := instance.New(instance.Config{Auditor: auditor, References: refs.get, Verifier: v, Policy: pol, Logger: log.With("task", "instances")})
	if err != nil {
		return nil, nil, err
	}
	if err := tr.Load(ctx, st); err != nil {
		return nil, nil, err
	}
	sw := &instance.Sweeper{Tracker: tr, Store: st, Interval: DefaultInstanceSweep, CollateralDir: cfg.AttestCollateral}
	return tr, sw, nil
}

// referenceCache reads an image's reference attestation from its
// registry (the repository the store knows the digest in), verified with
// the trusted keys, and remembers the answer for five minutes.
type referenceCache struct {
	st   *store.Store
	keys []crypto.PublicKey
	opts sign.Options

	mu sync.Mutex
	m  map[string]refEntry
}

type refEntry struct {
	pred    *attest.ReferencePredicate
	err     error
	expires time.Time
}

func (c *referenceCache) get(ctx context.Context, digest string) (*attest.ReferencePredicate, error) {
	c.mu.Lock()
	e, ok := c.m[digest]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.pred, e.err
	}
	img, err := c.st.Image(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("looking up image %s: %w", digest, err)
	}
	pred, err := attest.ReadReference(ctx, img.Repository+"@"+digest, c.keys, c.opts)
	c.mu.Lock()
	c.m[digest] = refEntry{pred: pred, err: err, expires: time.Now().Add(5 * time.Minute)}
	c.mu.Unlock()
	return pred, err
}
