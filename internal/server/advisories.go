package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// findingsStore stores re-evaluated findings counts.
type findingsStore interface {
	SetFindings(ctx context.Context, counts map[string]map[string]int) error
}

// changeConsumer is the server's cursor name in the advisory database's
// change log.
const changeConsumer = "server"

// updater keeps the advisory database current and the certifications in
// line with it. It owns the two steps of an advisory change:
//
//  1. import: each source is imported in one transaction, which also
//     appends the ids of the changed records to the database's change log;
//  2. catch up: the changes past the server's cursor are re-evaluated
//     (revocations are idempotent and audited in their own transaction),
//     then the cursor moves past them.
//
// A crash in step 1 rolls the import back: the next scheduled update (one
// runs at start) imports again. A crash in step 2 leaves the cursor where
// it was: the catch-up at start re-evaluates the same changes, finds the
// digests already revoked untouched, and revokes the rest. Nothing is lost,
// nothing is done twice.
//
// With several replicas on PostgreSQL each keeps its own advisory database
// in its data directory and runs its own updater; their catch-ups revoke
// the same digests, and the conditional revoke lets only the first write
// it (docs/server.md).
type updater struct {
	adb *vulndb.DB
	// engine returns the re-evaluation engine; its judge passes each
	// judged image's findings counts to record.
	engine   func(record func(digest string, counts map[string]int)) *reeval.Engine
	store    findingsStore
	sources  []vulndb.Source // scheduled sources; none: API imports only
	interval time.Duration
	log      *slog.Logger
	// anchor moves the audit anchor past the revocations' entries.
	anchor func(ctx context.Context) error

	mu sync.Mutex // one import or catch-up at a time
}

// Run catches up at once, then, when sources are configured, updates at
// start and every interval until ctx is done. A failed update is logged
// and retried at the next tick; a failed catch-up is retried the same way.
func (u *updater) Run(ctx context.Context) error {
	if _, err := u.catchUp(ctx, reeval.DefaultActor); err != nil && ctx.Err() == nil {
		u.log.Error("re-evaluating pending advisory changes", "err", err)
	}
	if len(u.sources) == 0 || u.interval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		sum, err := u.Import(ctx, u.sources, "system:scheduler")
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			u.log.Error("scheduled advisory update", "err", err)
		default:
			u.log.Info("advisory update", "changed", sum.Changed, "affected", sum.Affected,
				"revocations", len(sum.Revocations), "duration", sum.Duration)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Import imports sources one after the other, then catches up. Sources
// imported before a failing one stay imported and are re-evaluated before
// Import returns the error.
func (u *updater) Import(ctx context.Context, sources []vulndb.Source, actor string) (api.AdvisoryImportSummary, error) {
	start := time.Now()
	sum := api.AdvisoryImportSummary{Imports: []vulndb.Result{}, Revocations: []reeval.Revocation{}}
	var importErr error
	u.mu.Lock()
	for _, src := range sources {
		res, err := u.adb.Import(ctx, src)
		if err != nil {
			importErr = fmt.Errorf("importing %s: %w", src.Location, err)
			break
		}
		sum.Imports = append(sum.Imports, res)
		sum.Changed += len(res.Changed)
	}
	u.mu.Unlock()
	res, err := u.catchUp(ctx, actor)
	sum.Affected, sum.Rematched = res.Affected, res.Rematched
	if res.Revocations != nil {
		sum.Revocations = res.Revocations
	}
	sum.Duration = time.Since(start)
	return sum, errors.Join(importErr, err)
}

// catchUp re-evaluates the changes past the server's cursor and moves the
// cursor once that succeeded.
func (u *updater) catchUp(ctx context.Context, actor string) (reeval.Result, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ch, err := u.adb.ChangesSince(ctx, changeConsumer)
	if err != nil {
		return reeval.Result{}, err
	}
	var res reeval.Result
	if len(ch.Records) > 0 {
		var mu sync.Mutex
		counts := map[string]map[string]int{}
		e := u.engine(func(digest string, c map[string]int) {
			mu.Lock()
			counts[digest] = c
			mu.Unlock()
		})
		e.Actor = actor
		if res, err = e.Reevaluate(ctx, ch.Records); err != nil {
			return res, fmt.Errorf("re-evaluating %d changed advisories: %w", len(ch.Records), err)
		}
		// After the revocations, so that they are written first: the
		// counts the hygiene views show, as of this run.
		if u.store != nil {
			if err := u.store.SetFindings(ctx, counts); err != nil {
				return res, err
			}
		}
		u.log.Info("re-evaluated advisory changes", "changed", len(ch.Records), "affected", res.Affected,
			"revocations", len(res.Revocations), "duration", res.Total)
		if len(res.Revocations) > 0 && u.anchor != nil {
			if err := u.anchor(ctx); err != nil {
				return res, err
			}
		}
	}
	if ch.Seq > 0 {
		if err := u.adb.Advance(ctx, changeConsumer, ch.Seq); err != nil {
			return res, err
		}
	}
	return res, nil
}
