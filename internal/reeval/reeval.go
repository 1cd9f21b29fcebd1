// Package reeval re-evaluates stored inventories when the advisory database
// changes: advisory delta -> package index -> re-match only the affected
// digests -> revoke the certifications that no longer hold. No image is
// re-pulled; see docs/reeval.md.
package reeval

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/failpoint"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Store is what re-evaluation needs of the control-plane store;
// *store.SQLite is one.
type Store interface {
	DigestsFor(ctx context.Context, ecosystem, name string) ([]string, error)
	Inventory(ctx context.Context, digest string) (*sbom.SBOM, error)
	Certification(ctx context.Context, digest string) (store.Certification, error)
	// RevokeBatch moves the certified digests of batch to revoked and
	// audits each as actor, in one transaction, and returns those it
	// revoked (the others were not certified).
	RevokeBatch(ctx context.Context, batch []store.Revocation, actor string) ([]store.Revocation, error)
	// RollbackTarget is the newest certified digest of repository, or "".
	RollbackTarget(ctx context.Context, repository string) (string, error)
}

// DefaultActor is the audit actor of re-evaluation's revocations.
const DefaultActor = "system:reevaluate"

// Judge decides whether digest, whose inventory is s, still passes given
// its fresh findings res. reason explains a failure.
type Judge func(ctx context.Context, digest string, s *sbom.SBOM, res *match.Result) (pass bool, reason string, err error)

// Revocation is the event of one certification revoked.
type Revocation struct {
	Digest string    `json:"digest"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Key is one (ecosystem, name) of the package index, as osv.Key gives it.
type Key struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

// Result is what one Reevaluate did.
type Result struct {
	// Keys are the distinct index keys of the changed records, sorted.
	Keys []Key `json:"keys"`
	// Affected is the number of distinct digests holding one of Keys.
	Affected int `json:"affected"`
	// Rematched is the number of affected digests matched again and
	// judged (all of them, unless the run failed).
	Rematched int `json:"rematched"`
	// Revocations are the certifications revoked, sorted by digest.
	Revocations []Revocation `json:"revocations"`

	IndexTime time.Duration `json:"indexTime"` // keys -> affected digests
	MatchTime time.Duration `json:"matchTime"` // load, re-match, judge and revoke
	Total     time.Duration `json:"total"`
}

// Engine re-evaluates the inventories of a Store against an advisory
// Source (a *vulndb.DB).
type Engine struct {
	Store    Store
	Advisory match.Source
	// Judge decides pass or fail; nil is SeverityJudge(MinSeverity).
	Judge Judge
	// MinSeverity is the default Judge's threshold; zero means HIGH.
	MinSeverity match.Severity
	// Workers bounds the digests evaluated at once; zero means
	// GOMAXPROCS (the work is CPU-bound with the pure-Go SQLite: more
	// workers measured slower; a networked database may want more).
	Workers int
	// Now gives the revocation time; nil is time.Now.
	Now func() time.Time
	// Actor names who revokes in the audit log; "" is DefaultActor.
	Actor string
	// OnRevoke, when set, is called after each revocation is committed
	// (notifications); calls may be concurrent.
	OnRevoke func(Revocation)
}

// SeverityJudge fails an image with a finding at or above min. It is the
// default while the store keeps no image config (the full policy needs it).
func SeverityJudge(min match.Severity) Judge { return severityJudge(min, nil) }

// severityJudge is SeverityJudge preferring, for the reason, the findings
// of the changed advisories (ids).
func severityJudge(min match.Severity, changed map[string]bool) Judge {
	return func(_ context.Context, _ string, _ *sbom.SBOM, res *match.Result) (bool, string, error) {
		var worst []match.Finding
		for _, f := range res.Findings {
			if f.Severity >= min {
				worst = append(worst, f)
			}
		}
		if len(worst) == 0 {
			return true, "", nil
		}
		fromChanged := func(f match.Finding) bool {
			for _, id := range f.Advisories {
				if changed[id] {
					return true
				}
			}
			return false
		}
		// A finding of a changed advisory first, the highest severity
		// first, then by id, for a stable reason.
		sort.SliceStable(worst, func(i, j int) bool {
			if ci, cj := fromChanged(worst[i]), fromChanged(worst[j]); ci != cj {
				return ci
			}
			if worst[i].Severity != worst[j].Severity {
				return worst[i].Severity > worst[j].Severity
			}
			return worst[i].ID < worst[j].ID
		})
		f := worst[0]
		reason := fmt.Sprintf("%s (%s) in %s %s", f.ID, f.Severity, f.Package.Name, f.Package.Version)
		if len(f.Advisories) > 0 {
			reason += ": advisory " + strings.Join(f.Advisories, ", ")
			if fromChanged(f) {
				reason += " changed"
			}
		}
		if len(worst) > 1 {
			reason += fmt.Sprintf(" (and %d more at or above %s)", len(worst)-1, min)
		}
		return false, reason, nil
	}
}

// KeysOf returns the distinct index keys of the packages the records name
// in their affected lists, sorted.
func KeysOf(changed []*osv.Record) []Key {
	seen := map[Key]bool{}
	var keys []Key
	for _, r := range changed {
		if r == nil {
			continue
		}
		for _, a := range r.Affected {
			if a.Package.Ecosystem == "" || a.Package.Name == "" {
				continue
			}
			eco, name := osv.Key(a.Package.Ecosystem, a.Package.Name)
			k := Key{eco, name}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.SortFunc(keys, func(a, b Key) int {
		if c := strings.Compare(a.Ecosystem, b.Ecosystem); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return keys
}

// Reevaluate re-matches the stored inventories that hold a package named
// by one of the changed records (new, modified or withdrawn advisories, as
// they now are) against the whole advisory source, and revokes the
// certified digests that no longer pass. It is idempotent: a digest
// already revoked is not revoked again, so a crashed run can be repeated.
// On error, the revocations already written stay written (each is one
// write) and are returned in the Result.
func (e *Engine) Reevaluate(ctx context.Context, changed []*osv.Record) (Result, error) {
	start := time.Now()
	res := Result{Keys: KeysOf(changed), Revocations: []Revocation{}}

	seen := map[string]bool{}
	var digests []string
	for _, k := range res.Keys {
		ds, err := e.Store.DigestsFor(ctx, k.Ecosystem, k.Name)
		if err != nil {
			return res, err
		}
		for _, d := range ds {
			if !seen[d] {
				seen[d] = true
				digests = append(digests, d)
			}
		}
	}
	slices.Sort(digests)
	res.Affected = len(digests)
	res.IndexTime = time.Since(start)

	judge := e.Judge
	if judge == nil {
		min := e.MinSeverity
		if min == match.SeverityUnknown {
			min = match.SeverityHigh
		}
		ids := map[string]bool{}
		for _, r := range changed {
			if r != nil {
				ids[r.ID] = true
			}
		}
		judge = severityJudge(min, ids)
	}
	workers := e.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	now := e.Now
	if now == nil {
		now = time.Now
	}
	mm := newMatcher(e.Advisory)

	actor := e.Actor
	if actor == "" {
		actor = DefaultActor
	}
	matchStart := time.Now()
	var (
		mu        sync.Mutex
		rematched int
	)
	// SQLite has one writer: the workers hand failing certified digests to
	// one writer, which revokes them in batches (one transaction each).
	pending := make(chan store.Revocation, maxBatch)
	written := make(chan error, 1)
	go func() {
		written <- e.write(ctx, pending, actor, now, func(rv Revocation) {
			mu.Lock()
			res.Revocations = append(res.Revocations, rv)
			mu.Unlock()
		})
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, d := range digests {
		g.Go(func() error {
			inv, err := e.Store.Inventory(gctx, d)
			if err != nil {
				return err
			}
			m, err := mm.Match(gctx, inv)
			if err != nil {
				return fmt.Errorf("matching %s: %w", d, err)
			}
			mu.Lock()
			rematched++
			mu.Unlock()
			pass, reason, err := judge(gctx, d, inv, m)
			if err != nil {
				return fmt.Errorf("judging %s: %w", d, err)
			}
			if pass {
				return nil
			}
			c, err := e.Store.Certification(gctx, d)
			if errors.Is(err, store.ErrNotFound) || err == nil && c.Status != store.Certified {
				return nil // nothing to revoke
			}
			if err != nil {
				return err
			}
			if reason == "" {
				reason = "no longer passes policy"
			}
			select {
			case pending <- store.Revocation{Digest: d, Reason: reason}:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	}
	err := g.Wait()
	close(pending)
	err = errors.Join(err, <-written)
	res.Rematched = rematched
	slices.SortFunc(res.Revocations, func(a, b Revocation) int { return strings.Compare(a.Digest, b.Digest) })
	res.MatchTime = time.Since(matchStart)
	res.Total = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("re-evaluating: %w", err)
	}
	return res, nil
}

// maxBatch bounds the revocations written in one transaction.
const maxBatch = 64

// write revokes what arrives on pending, in batches of what is waiting
// (at most maxBatch), until pending is closed; each revocation committed is
// passed to add, then to OnRevoke. After a failed write it keeps draining
// pending, so no worker blocks, and returns the error.
func (e *Engine) write(ctx context.Context, pending <-chan store.Revocation, actor string, now func() time.Time, add func(Revocation)) error {
	var failed error
	for first := range pending {
		if failed != nil {
			continue
		}
		batch := []store.Revocation{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-pending:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		done, err := e.Store.RevokeBatch(ctx, batch, actor)
		if err != nil {
			failed = err
			continue
		}
		t := now().UTC()
		for _, r := range done {
			failpoint.Hit("reeval.revoked")
			rv := Revocation{Digest: r.Digest, Reason: r.Reason, Time: t}
			add(rv)
			if e.OnRevoke != nil {
				e.OnRevoke(rv)
			}
		}
	}
	return failed
}

// RollbackTarget returns the newest digest of repository (by the image
// config's created time) whose certification is still certified, or ""
// when there is none.
func (e *Engine) RollbackTarget(ctx context.Context, repository string) (string, error) {
	return e.Store.RollbackTarget(ctx, repository)
}

// cache memoises Lookup for one Reevaluate: the affected inventories share
// most of their packages (a distribution base), so each (ecosystem, name)
// is read from the advisory database once per run, not once per image.
type cache struct {
	src match.Source
	mu  sync.Mutex
	m   map[Key]*entry
}

type entry struct {
	once sync.Once
	recs []*osv.Record
	err  error
}

func newCache(src match.Source) *cache { return &cache{src: src, m: map[Key]*entry{}} }

func (c *cache) Lookup(ctx context.Context, ecosystem, name string) ([]*osv.Record, error) {
	k := Key{ecosystem, name}
	c.mu.Lock()
	en := c.m[k]
	if en == nil {
		en = &entry{}
		c.m[k] = en
	}
	c.mu.Unlock()
	en.once.Do(func() { en.recs, en.err = c.src.Lookup(ctx, ecosystem, name) })
	return en.recs, en.err
}
