package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// lateRevocations answers the workloads of a revoked digest that the
// running inventory learns of after the revocation's response listed
// what ran (a container restarted, a node's heartbeat late, the server
// restarted): for each digest the inventory names (fleet.RevokedArrivals)
// it queues the revocation's respond job again, with the same event and
// rollback target, so the workloads the revocation answered are not
// answered twice (responses are recorded under keys) and the new ones
// are answered as the revocation would have. The job goes through the
// durable queue: a crash loses nothing (after a restart every workload
// is new to the inventory, and arrives again).
//
// Bounded: one arrival per digest however many containers, and no job
// queued for a (revocation, digest) while the one this process queued
// waits; the job answers every workload of the digest.
type lateRevocations struct {
	store *store.Store
	fleet *fleet.Index
	log   *slog.Logger
	wake  func() // the respond worker's
	retry time.Duration

	mu sync.Mutex
	// known is the respond job of each digest's newest revocation, as
	// the events task queued it or the job queue keeps it on record.
	known map[string]respond.Job
	// queued is the job last queued here per event and digest.
	queued map[string]int64
}

func newLateRevocations(st *store.Store, x *fleet.Index, wake func(), retry time.Duration, log *slog.Logger) *lateRevocations {
	if retry <= 0 {
		retry = time.Second
	}
	return &lateRevocations{store: st, fleet: x, log: log, wake: wake, retry: retry,
		known: map[string]respond.Job{}, queued: map[string]int64{}}
}

// revoked notes the respond job a revocation queued.
func (l *lateRevocations) revoked(j respond.Job) {
	l.mu.Lock()
	l.known[j.Digest] = j
	l.mu.Unlock()
}

// Run answers arrivals until ctx is done; a digest whose answer failed
// (the store unreachable) is tried again after the retry interval.
func (l *lateRevocations) Run(ctx context.Context) error {
	retry := map[string]bool{}
	for {
		var again <-chan time.Time
		if len(retry) > 0 {
			again = time.After(l.retry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.fleet.RevokedArrived():
		case <-again:
		}
		for _, d := range l.fleet.RevokedArrivals() {
			retry[d] = true
		}
		for d := range retry {
			if err := l.answer(ctx, d); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				l.log.Warn("answering a late workload of a revoked digest", "digest", d, "err", err)
				continue
			}
			delete(retry, d)
		}
	}
}

// answer queues the respond job of digest's current revocation again,
// unless one queued here for it still waits.
func (l *lateRevocations) answer(ctx context.Context, digest string) error {
	c, err := l.store.Certification(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.Status != store.Revoked {
		return nil // certified again meanwhile
	}
	l.mu.Lock()
	job, ok := l.known[digest]
	l.mu.Unlock()
	if !ok || !job.Time.Equal(c.Updated) {
		if job, ok, err = respond.Revocation(ctx, l.store, digest); err != nil {
			return err
		}
		if !ok || !job.Time.Equal(c.Updated) {
			// The revocation's own respond job is not queued yet: when it
			// runs it lists the workload, which runs now.
			l.log.Debug("a workload of a revoked digest arrived before its revocation was answered", "digest", digest)
			return nil
		}
		l.revoked(job)
	}
	key := job.Event + " " + digest
	l.mu.Lock()
	id, ok := l.queued[key]
	l.mu.Unlock()
	if ok {
		j, err := l.store.Job(ctx, id)
		switch {
		case err == nil && j.State == store.JobQueued:
			return nil // it answers every workload of the digest, this one too
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	if id, err = respond.EnqueueID(ctx, l.store, job); err != nil {
		return err
	}
	l.mu.Lock()
	l.queued[key] = id
	l.mu.Unlock()
	if l.wake != nil {
		l.wake()
	}
	l.log.Info("a workload of a revoked digest arrived after its revocation: its response queued again",
		"digest", digest, "event", job.Event, "target", job.Target, "job", id)
	return nil
}
