package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/store"
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
// in its data directory and runs its own updater, and each imports the
// same changes. The re-evaluation of one change set is a job in the shared
// store, keyed by the set's digest: the first replica to find the change
// queues and claims it, the others find it running (and check again
// shortly) or done (and only move their cursors). Each change set is
// re-evaluated once (docs/server.md).
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
	// jobs, when set, makes each change set's re-evaluation a job run once
	// across replicas, claimed as instance.
	jobs     reevalJobs
	instance string
	// retry is how often a catch-up whose change set another replica is
	// re-evaluating is tried again; zero is DefaultPollInterval.
	retry time.Duration

	// imported, when set, is told that an import ran (the cached status
	// of the advisory database is stale).
	imported func()
	// revoked, when set, is told that a re-evaluation revoked digests
	// (their outbox jobs are committed).
	revoked func()

	mu     sync.Mutex  // one import or catch-up at a time
	behind atomic.Bool // a change set waits on another replica
}

// JobReevaluate is the kind of the job that re-evaluates one advisory
// change set.
const JobReevaluate = "reevaluate"

// reevalJobs is what the updater needs of the job queue.
type reevalJobs interface {
	EnqueueJobOnce(ctx context.Context, kind string, payload []byte, runAfter time.Time) (int64, bool, error)
	ClaimJobWithPayload(ctx context.Context, worker, kind string, payload []byte) (*store.Job, error)
	DoneJob(ctx context.Context, kind string, payload []byte) (int64, bool, error)
	DropJob(ctx context.Context, j *store.Job) error
	CompleteJob(ctx context.Context, j *store.Job) error
	FailJob(ctx context.Context, j *store.Job, cause error) error
}

// errElsewhere is catchUp's answer when another replica is re-evaluating
// the same change set: not an error; the updater checks again.
var errElsewhere = errors.New("another replica is re-evaluating these advisory changes")

// changeSet is the payload of a reevaluate job: the digest of the changed
// records' ids and modified times, which every replica importing the same
// data computes alike.
type changeSet struct {
	Changes string `json:"changes"`
	Records int    `json:"records"`
}

func changeSetPayload(recs []*osv.Record) []byte {
	lines := make([]string, len(recs))
	for i, r := range recs {
		lines[i] = r.ID + "@" + r.Modified
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	b, _ := json.Marshal(changeSet{Changes: hex.EncodeToString(sum[:]), Records: len(recs)})
	return b
}

// Run catches up at once, then, when sources are configured, updates at
// start and every interval until ctx is done. A failed update is logged
// and retried at the next tick; a failed catch-up is retried the same way.
func (u *updater) Run(ctx context.Context) error {
	u.retryCatchUp(ctx)
	retryEvery := u.retry
	if retryEvery <= 0 {
		retryEvery = DefaultPollInterval
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	var tick <-chan time.Time
	scheduled := len(u.sources) > 0 && u.interval > 0
	if scheduled {
		t := time.NewTicker(u.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		if scheduled {
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
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick:
				break wait
			case <-retry.C:
				if u.behind.Load() {
					u.retryCatchUp(ctx)
				}
			}
		}
	}
}

// Sources are the configured sources, the only ones the API may import.
func (u *updater) Sources() []vulndb.Source { return slices.Clone(u.sources) }

// retryCatchUp catches up and logs the outcome.
func (u *updater) retryCatchUp(ctx context.Context) {
	if _, err := u.catchUp(ctx, reeval.DefaultActor); err != nil && ctx.Err() == nil && !errors.Is(err, errElsewhere) {
		u.log.Error("re-evaluating pending advisory changes", "err", err)
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
	if u.imported != nil {
		u.imported()
	}
	u.mu.Unlock()
	res, err := u.catchUp(ctx, actor)
	if errors.Is(err, errElsewhere) {
		err = nil // another replica revokes; this one's cursor moves once it is done
	}
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
		job, done, err := u.claim(ctx, ch.Records)
		if err != nil {
			u.behind.Store(errors.Is(err, errElsewhere))
			return res, err
		}
		if !done {
			if res, err = u.reevaluate(ctx, actor, ch.Records); err != nil {
				if job != nil {
					err = errors.Join(err, u.jobs.FailJob(context.WithoutCancel(ctx), job, err))
				}
				return res, err
			}
			if job != nil {
				if err := u.jobs.CompleteJob(ctx, job); err != nil {
					return res, err
				}
			}
		}
	}
	u.behind.Store(false)
	if ch.Seq > 0 {
		if err := u.adb.Advance(ctx, changeConsumer, ch.Seq); err != nil {
			return res, err
		}
	}
	return res, nil
}

// claim takes the re-evaluation job of the change set recs: done when
// another replica already re-evaluated it, errElsewhere while one is at
// it, else the claimed job (nil when the updater has no job queue).
func (u *updater) claim(ctx context.Context, recs []*osv.Record) (job *store.Job, done bool, err error) {
	if u.jobs == nil {
		return nil, false, nil
	}
	payload := changeSetPayload(recs)
	if id, ok, err := u.jobs.DoneJob(ctx, JobReevaluate, payload); err != nil || ok {
		if ok {
			u.log.Info("advisory changes already re-evaluated", "changed", len(recs), "job", id)
		}
		return nil, ok, err
	}
	if _, _, err := u.jobs.EnqueueJobOnce(ctx, JobReevaluate, payload, time.Time{}); err != nil {
		return nil, false, err
	}
	job, err = u.jobs.ClaimJobWithPayload(ctx, u.instance, JobReevaluate, payload)
	if errors.Is(err, store.ErrNoJob) {
		return nil, false, errElsewhere
	}
	if err != nil {
		return nil, false, err
	}
	// Another replica may have finished the same change set between the
	// first look and the enqueue (its job was no longer pending, so ours
	// was queued): then ours duplicates it and goes.
	if id, ok, err := u.jobs.DoneJob(ctx, JobReevaluate, payload); err != nil || ok {
		if ok {
			u.log.Info("advisory changes re-evaluated meanwhile", "changed", len(recs), "job", id)
			err = u.jobs.DropJob(ctx, job)
		}
		return nil, ok, err
	}
	return job, false, nil
}

// reevaluate re-evaluates the changed records, then stores the findings
// counts and anchors the audit log.
func (u *updater) reevaluate(ctx context.Context, actor string, recs []*osv.Record) (reeval.Result, error) {
	var mu sync.Mutex
	counts := map[string]map[string]int{}
	e := u.engine(func(digest string, c map[string]int) {
		mu.Lock()
		counts[digest] = c
		mu.Unlock()
	})
	e.Actor = actor
	res, err := e.Reevaluate(ctx, recs)
	if err != nil {
		return res, fmt.Errorf("re-evaluating %d changed advisories: %w", len(recs), err)
	}
	// After the revocations, so that they are written first: the counts
	// the hygiene views show, as of this run.
	if u.store != nil {
		if err := u.store.SetFindings(ctx, counts); err != nil {
			return res, err
		}
	}
	u.log.Info("re-evaluated advisory changes", "changed", len(recs), "affected", res.Affected,
		"revocations", len(res.Revocations), "duration", res.Total)
	if len(res.Revocations) > 0 && u.revoked != nil {
		u.revoked()
	}
	if len(res.Revocations) > 0 && u.anchor != nil {
		if err := u.anchor(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}
