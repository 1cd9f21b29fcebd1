package audit

import (
	"context"
	"sync"
)

// Group appends the entries of a hot path (identity decisions, secret
// releases) in shared transactions: whoever finds no commit running
// starts the committer, which writes everything queued, again and again
// until the queue is empty; the callers wait for the batch holding their
// entry. Each entry still commits before its caller goes on, but a burst
// costs one transaction per batch, not one per entry (the chain's lock
// serialises appends anyway).
//
// Commit writes one batch in one transaction (api.Auditor.Do returning
// the entries); it runs without the callers' cancellation, so a cancelled
// request does not fail the others' audit.
type Group struct {
	Commit func(ctx context.Context, entries []Entry) error

	mu      sync.Mutex
	queued  []Entry
	waiters []chan error
	running bool
}

// Append queues e and waits until the batch holding it commits. When ctx
// ends first it returns ctx.Err(); the entry may still commit, and the
// caller must then give nothing out.
func (g *Group) Append(ctx context.Context, e Entry) error {
	done := make(chan error, 1)
	g.mu.Lock()
	g.queued, g.waiters = append(g.queued, e), append(g.waiters, done)
	if !g.running {
		g.running = true
		go g.commit(context.WithoutCancel(ctx))
	}
	g.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit writes batches until none is queued.
func (g *Group) commit(ctx context.Context) {
	for {
		g.mu.Lock()
		entries, waiters := g.queued, g.waiters
		g.queued, g.waiters = nil, nil
		if len(entries) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := g.Commit(ctx, entries)
		for _, w := range waiters {
			w <- err
		}
	}
}
