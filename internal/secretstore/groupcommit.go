package secretstore

import (
	"context"

	"sync"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// groupCommit appends release audit entries in shared transactions: the
// first caller commits its entry and every entry queued meanwhile, then
// the next batch, until the queue is empty; the others wait for the
// commit of their batch. Every release is still audited before its value
// is returned, but a burst of releases costs one transaction, not one
// each (the audit chain's lock serialises them anyway).
type groupCommit struct {
	auditor Auditor

	mu       sync.Mutex
	queue    []pending
	flushing bool
}

type pending struct {
	e    audit.Entry
	done chan error
}

func (g *groupCommit) append(ctx context.Context, e audit.Entry) error {
	p := pending{e: e, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	if g.flushing {
		g.mu.Unlock()
		return <-p.done
	}
	g.flushing = true
	for len(g.queue) > 0 {
		batch := g.queue
		g.queue = nil
		g.mu.Unlock()
		entries := make([]audit.Entry, len(batch))
		for i, q := range batch {
			entries[i] = q.e
		}
		// Not the leader's own context: a cancelled request must not fail
		// the others' audit.
		err := g.auditor.Do(context.WithoutCancel(ctx), func(*store.Store) ([]audit.Entry, error) { return entries, nil })
		for _, q := range batch {
			q.done <- err
		}
		g.mu.Lock()
	}
	g.flushing = false
	g.mu.Unlock()
	return <-p.done
}
