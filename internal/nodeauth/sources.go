package nodeauth

import (
	"context"
	"fmt"
	"sync"
)

// perSource bounds the reviews one source (a client address) has in
// flight. A token is unauthenticated until the cluster has reviewed it, so
// anyone who reaches the server can send them: distinct forged JWTs cost
// nothing to make and each is a review (a cache of refusals would not
// help). Without this bound one address held every one of the
// maxConcurrent slots and the agents' reviews waited behind its flood
// (measured: 200 connections of forged tokens against a real apiserver,
// about 1,100 reviews/s, kept every slot busy); with it one address holds
// perSource, the agents keep the rest. An agent's review is rare (once a
// minute per token, the cache answers the rest), so agents that share an
// address (a proxy, a NAT) wait their turn, within reviewTimeout.
const perSource = 2

// sources holds a semaphore per source with reviews in flight or
// waiting; a source with none has no entry (the map holds at most the
// requests under way). Each source waits on its own: a slot freed wakes
// one waiter of that source, not every waiter of every source.
type sources struct {
	mu sync.Mutex
	m  map[string]*source
}

type source struct {
	slots chan struct{}
	users int // reviews in flight or waiting for a slot
}

func newSources() *sources { return &sources{m: map[string]*source{}} }

// enter waits, while ctx lasts, for one of src's perSource slots; leave
// (once, only after enter succeeded) gives it back.
func (s *sources) enter(ctx context.Context, src string) error {
	s.mu.Lock()
	e := s.m[src]
	if e == nil {
		e = &source{slots: make(chan struct{}, perSource)}
		s.m[src] = e
	}
	e.users++
	s.mu.Unlock()
	select {
	case e.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		s.release(src, e)
		return fmt.Errorf("waiting for one of the %d review slots of address %s: %w", perSource, src, ctx.Err())
	}
}

func (s *sources) leave(src string) {
	s.mu.Lock()
	e := s.m[src]
	s.mu.Unlock()
	if e == nil {
		return
	}
	<-e.slots
	s.release(src, e)
}

// release forgets one user of e, and e with the last.
func (s *sources) release(src string, e *source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.users--; e.users <= 0 {
		delete(s.m, src)
	}
}

// len is the number of sources with reviews in flight or waiting.
func (s *sources) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
