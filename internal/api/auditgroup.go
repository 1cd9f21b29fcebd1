package api

import (
	"context"
	"sync"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// auditGroup appends audit entries of a hot path (identity decisions) in
// shared transactions: whoever finds no commit running becomes the
// committer and writes everything queued, again and again until the
// queue is empty; the others wait for the batch holding their entry.
// Each entry still commits before its caller goes on; a burst costs one
// transaction per batch, not one per entry (the chain's lock serialises
// appends anyway).
type auditGroup struct {
	auditor *Auditor

	mu      sync.Mutex
	queued  []audit.Entry
	waiters []chan error
	running bool
}

func (g *auditGroup) append(ctx context.Context, e audit.Entry) error {
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
		// The entry may still commit; the caller gives nothing out.
		return ctx.Err()
	}
}

// commit writes batches until none is queued.
func (g *auditGroup) commit(ctx context.Context) {
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
		err := g.auditor.Do(ctx, func(*store.Store) ([]audit.Entry, error) { return entries, nil })
		for _, w := range waiters {
			w <- err
		}
	}
}
