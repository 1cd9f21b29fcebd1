package instance

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// UseVerifier installs v (new collateral or policy) and re-judges every
// verified or stale instance from its recorded result with v.Rejudge.
// Those that no longer pass are revoked in one transaction with one audit
// entry naming cause (the collateral's digest) and every revoked ID. It
// returns the revoked IDs.
func (t *Tracker) UseVerifier(ctx context.Context, actor, cause string, v *attest.Verifier) ([]string, error) {
	t.verifier.Store(v)
	type verdict struct{ reason, detail string }
	groups := map[verdict][]string{}
	var ids []string
	t.mu.RLock()
	for id, in := range t.byID {
		if (in.Status != Verified && in.Status != Stale) || in.Result == nil {
			continue
		}
		if err := v.Rejudge(in.Result); err != nil {
			k := verdict{string(attest.ReasonOf(err)), err.Error()}
			groups[k] = append(groups[k], id)
			ids = append(ids, id)
		}
	}
	t.mu.RUnlock()
	if len(ids) == 0 {
		return nil, nil
	}
	sort.Strings(ids)
	reasons := map[string]int{}
	err := t.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		for k, g := range groups {
			if err := tx.SetTEEStatus(ctx, g, string(Revoked), k.reason, k.detail); err != nil {
				return nil, err
			}
			reasons[k.reason] += len(g)
		}
		after, _ := json.Marshal(map[string]any{"revoked": len(ids), "reasons": reasons, "instances": ids})
		return append([]audit.Entry{{Actor: actor, Action: "instance.revoke", Object: "collateral:" + cause, After: after}},
			t.imageEntries(actor, ids, Revoked)...), nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoking %d instances: %w", len(ids), err)
	}
	now := t.now().UTC()
	t.mu.Lock()
	for k, g := range groups {
		for _, id := range g {
			if in, ok := t.byID[id]; ok {
				in.Status, in.Reason, in.Detail, in.Updated = Revoked, k.reason, k.detail, now
			}
		}
	}
	t.mu.Unlock()
	t.log.Warn("instances revoked by new collateral", "cause", cause, "count", len(ids), "reasons", reasons)
	return ids, nil
}

// Sweep marks verified instances that have not re-attested within
// ReattestEvery stale (audited, one entry) and deletes expired challenges.
// It returns the IDs marked stale.
func (t *Tracker) Sweep(ctx context.Context) ([]string, error) {
	now := t.now().UTC()
	var ids []string
	t.mu.RLock()
	for id, in := range t.byID {
		if in.Status == Verified && now.Sub(in.Verified) > t.policy.ReattestEvery {
			ids = append(ids, id)
		}
	}
	t.mu.RUnlock()
	sort.Strings(ids)
	detail := fmt.Sprintf("not re-attested within %s", t.policy.ReattestEvery)
	err := t.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		if _, err := tx.DeleteExpiredChallenges(ctx, now); err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, nil
		}
		if err := tx.SetTEEStatus(ctx, ids, string(Stale), "stale", detail); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(map[string]any{"stale": len(ids), "instances": ids})
		return append([]audit.Entry{{Actor: "system:instances", Action: "instance.stale", Object: "instances", After: after}},
			t.imageEntries("system:instances", ids, Stale)...), nil
	})
	if err != nil {
		return nil, fmt.Errorf("sweeping instances: %w", err)
	}
	t.mu.Lock()
	for _, id := range ids {
		if in, ok := t.byID[id]; ok && in.Status == Verified {
			in.Status, in.Reason, in.Detail, in.Updated = Stale, "stale", detail, now
		}
	}
	t.mu.Unlock()
	return ids, nil
}

// Sweeper is the server task: Sweep every Interval, reload the instances
// from the store (other replicas' registrations), and when the collateral
// directory's digest changes, load it and UseVerifier.
type Sweeper struct {
	Tracker  *Tracker
	Store    Lister
	Interval time.Duration
	// CollateralDir is watched when set; Base are the options its files
	// add to (Now, AllowMissingCollateral).
	CollateralDir string
	Base          attest.Options
	digest        string
}

// Run sweeps until ctx is done.
func (s *Sweeper) Run(ctx context.Context) error {
	tk := time.NewTicker(s.Interval)
	defer tk.Stop()
	for {
		if err := s.once(ctx); err != nil && ctx.Err() == nil {
			s.Tracker.log.Error("instance sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}

func (s *Sweeper) once(ctx context.Context) error {
	if s.CollateralDir != "" {
		d, err := attest.DirDigest(s.CollateralDir)
		if err != nil {
			return err
		}
		if d != s.digest {
			v, err := LoadVerifier(s.CollateralDir, s.Base)
			if err != nil {
				return fmt.Errorf("new collateral %s: %w", d, err)
			}
			if _, err := s.Tracker.UseVerifier(ctx, "system:collateral", d, v); err != nil {
				return err
			}
			s.digest = d
		}
	}
	if s.Store != nil {
		if err := s.Tracker.Load(ctx, s.Store); err != nil {
			return err
		}
	}
	_, err := s.Tracker.Sweep(ctx)
	return err
}

// LoadVerifier builds a verifier from a collateral directory
// (attest.LoadOptions) over base's clock and switches.
func LoadVerifier(dir string, base attest.Options) (*attest.Verifier, error) {
	o, err := attest.LoadOptions(dir)
	if err != nil {
		return nil, err
	}
	o.Now, o.AllowMissingCollateral = base.Now, base.AllowMissingCollateral
	return attest.New(o)
}
