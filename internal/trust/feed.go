package trust

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ChangeStore is what the Feed reads: the digests whose certification
// changed in audit entries after a sequence number (0: from the first),
// in commit order, and the newest sequence number
// (store.CertificationChangesFrom).
type ChangeStore interface {
	CertificationChangesFrom(ctx context.Context, seq int64) ([]string, int64, error)
}

// Feed bounds.
const (
	DefaultFeedPoll = 100 * time.Millisecond
	// MaxWaiters bounds the long polls held at once (agents, one each).
	MaxWaiters = 20_000
	// DefaultRing is how many changes the feed keeps in memory; a poll
	// from before them asks the store.
	DefaultRing = 1024
)

// ErrBusy says the feed holds MaxWaiters long polls already.
var ErrBusy = errors.New("too many agents are waiting for changes")

// Feed pushes certification changes to agents: one task reads the audit
// log's new certification entries every poll interval (one query for all
// agents, whatever their number) and wakes every long poll waiting for a
// change after its sequence number. Agents recheck the identities of the
// digests named; a revocation thus reaches them within the poll interval
// plus a round trip.
type Feed struct {
	st   ChangeStore
	poll time.Duration
	log  *slog.Logger
	// OnChange, when set, is called with the digests of each change
	// before the waiters wake.
	OnChange func(digests []string)
	// Ring is how many changes are kept (zero: DefaultRing).
	Ring int

	mu      sync.Mutex
	start   int64    // the ring holds every change after start
	seq     int64    // the newest audit sequence number read
	ring    []change // ascending seq
	wake    chan struct{}
	ready   chan struct{}
	waiters atomic.Int64
}

type change struct {
	seq     int64 // the changes in (previous entry's seq, seq]
	digests []string
}

// NewFeed returns the feed over st, polling every poll (zero:
// DefaultFeedPoll).
func NewFeed(st ChangeStore, poll time.Duration, log *slog.Logger) *Feed {
	if poll <= 0 {
		poll = DefaultFeedPoll
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Feed{st: st, poll: poll, log: log, Ring: DefaultRing, wake: make(chan struct{}), ready: make(chan struct{})}
}

// Run follows the audit log until ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	for {
		last, err := f.newest(ctx)
		if err == nil {
			f.mu.Lock()
			f.start, f.seq = last, last
			f.mu.Unlock()
			close(f.ready)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		f.log.Warn("reading the audit sequence", "error", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.mu.Lock()
		after := f.seq
		f.mu.Unlock()
		ds, last, err := f.st.CertificationChangesFrom(ctx, after)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			f.log.Warn("reading certification changes", "error", err)
			continue
		}
		f.mu.Lock()
		if last > f.seq {
			f.seq = last
		}
		if len(ds) > 0 && f.OnChange != nil {
			f.OnChange(ds)
		}
		if len(ds) > 0 {
			f.ring = append(f.ring, change{seq: last, digests: ds})
			if len(f.ring) > max(f.Ring, 1) {
				f.start = f.ring[0].seq
				f.ring = slices.Delete(f.ring, 0, 1)
			}
			close(f.wake)
			f.wake = make(chan struct{})
		}
		f.mu.Unlock()
	}
}

// newest is the audit log's newest sequence number (asking for changes
// after a sequence number no log reaches lists none).
func (f *Feed) newest(ctx context.Context) (int64, error) {
	_, last, err := f.st.CertificationChangesFrom(ctx, 1<<62)
	return last, err
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// Wait returns the digests whose certification changed after seq after,
// waiting up to wait for one, and the sequence number to pass next time.
// With after negative it returns the current sequence number at once.
func (f *Feed) Wait(ctx context.Context, after int64, wait time.Duration) ([]string, int64, error) {
	if f.waiters.Add(1) > MaxWaiters {
		f.waiters.Add(-1)
		return nil, 0, ErrBusy
	}
	defer f.waiters.Add(-1)
	select {
	case <-f.ready:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		seq, start, wake := f.seq, f.start, f.wake
		var ds []string
		if after >= start {
			for _, c := range f.ring {
				if c.seq > after {
					ds = append(ds, c.digests...)
				}
			}
		}
		f.mu.Unlock()
		switch {
		case after < 0:
			return nil, seq, nil
		case after < start:
			// Older than what the ring holds: ask the store.
			ds, last, err := f.st.CertificationChangesFrom(ctx, after)
			if err != nil {
				return nil, 0, err
			}
			return ds, last, nil
		case len(ds) > 0:
			slices.Sort(ds)
			return slices.Compact(ds), seq, nil
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, seq, nil
		case <-ctx.Done():
			return nil, seq, ctx.Err()
		}
	}
}

// Waiting is the number of long polls held now.
func (f *Feed) Waiting() int64 { return f.waiters.Load() }
