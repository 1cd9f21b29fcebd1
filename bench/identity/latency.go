package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
	bwapi "github.com/bulwark-sec/bulwark/internal/workloadapi"
)

// clientRetry is how soon the bench's go-spiffe clients ask again after
// PermissionDenied (go-spiffe's default waits 1 s, then 2 s, ... 30 s).
const clientRetry = 20 * time.Millisecond

type fastRetry struct{}

func (fastRetry) NewBackoff() workloadapi.Backoff { return fastRetry{} }
func (fastRetry) Next() time.Duration             { return clientRetry }
func (fastRetry) Reset()                          {}

type event struct {
	at     time.Time
	update bool
}

type watcher chan event

func (w watcher) OnX509ContextUpdate(*workloadapi.X509Context) { w.send(true) }
func (w watcher) OnX509ContextWatchError(error)                { w.send(false) }
func (w watcher) send(update bool) {
	select {
	case w <- event{at: time.Now(), update: update}:
	default:
	}
}

// eventTimeout bounds the wait for one event.
var eventTimeout = 10 * time.Second

// next waits for an update (or an error) at or after since.
func (w watcher) next(update bool, since time.Time) (time.Duration, error) {
	timeout := time.After(eventTimeout)
	for {
		select {
		case e := <-w:
			if e.update == update && !e.at.Before(since) {
				return e.at.Sub(since), nil
			}
		case <-timeout:
			return 0, fmt.Errorf("no %v event in %v", map[bool]string{true: "update", false: "error"}[update], eventTimeout)
		}
	}
}

// latencies measures (a) and (b) with the agent's Manager and Workload
// API in this process, serving this process as one workload whose image
// changes every round.
func (r *rig) latencies(ctx context.Context, dir string, rounds int) error {
	sock := filepath.Join(dir, "a.sock")
	var cur atomic.Pointer[identity.Workload]
	m := bwapi.NewManager(bwapi.ManagerConfig{
		Issuer:       &bwapi.ServerIssuer{URL: r.srv.URL, Token: r.op, Node: node},
		RetryRefused: 5 * time.Minute,
		Workloads: func() []identity.Workload {
			if w := cur.Load(); w != nil {
				return []identity.Workload{*w}
			}
			return nil
		}})
	srv := bwapi.NewServer(m, func(int) (identity.Workload, bool) {
		if w := cur.Load(); w != nil {
			return *w, true
		}
		return identity.Workload{}, false
	}, nil)
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	go m.Run(mctx)
	go srv.Serve(mctx, sock)
	time.Sleep(100 * time.Millisecond)
	var first, revoked, drifted []time.Duration
	for i := range rounds {
		d := digest(1000 + i)
		if err := r.st.PutImage(ctx, store.Image{Digest: d, Repository: "bench.example/app"}); err != nil {
			return err
		}
		w := identity.Workload{Node: node, Container: fmt.Sprintf("r%d", i), Image: d, Namespace: "bench"}
		cur.Store(&w)
		cctx, cancel := context.WithCancel(ctx)
		c, err := workloadapi.New(cctx, workloadapi.WithAddr("unix://"+sock), workloadapi.WithBackoffStrategy(fastRetry{}))
		if err != nil {
			cancel()
			return err
		}
		ev := make(watcher, 4096)
		go c.WatchX509Context(cctx, ev)
		step := func(what string, update bool, act func() error) (time.Duration, error) {
			t0 := time.Now()
			if err := act(); err != nil {
				return 0, err
			}
			d, err := ev.next(update, t0)
			if err != nil {
				return 0, fmt.Errorf("round %d, %s: %w", i, what, err)
			}
			return d, nil
		}
		var dur time.Duration
		if _, err = ev.next(false, time.Time{}); err == nil { // refused: uncertified
			if dur, err = step("certification", true, func() error { return r.setCertification(ctx, d, store.Certified) }); err == nil {
				first = append(first, dur)
				if dur, err = step("revocation", false, func() error { return r.setCertification(ctx, d, store.Revoked) }); err == nil {
					revoked = append(revoked, dur)
					if _, err = step("certification again", true, func() error { return r.setCertification(ctx, d, store.Certified) }); err == nil {
						if dur, err = step("drift", false, func() error { m.Withdraw(w.Container, identity.ReasonDrifted, "bench"); return nil }); err == nil {
							drifted = append(drifted, dur)
						}
					}
				}
			}
		}
		cancel()
		c.Close()
		if err != nil {
			return err
		}
	}
	fmt.Printf("  (a) certification -> first SVID on the stream:     %s\n", summary(first))
	fmt.Printf("  (b) revocation -> identity leaves the stream:       %s\n", summary(revoked))
	fmt.Printf("  (b) drift seen by the agent -> leaves the stream:   %s\n", summary(drifted))
	return nil
}
