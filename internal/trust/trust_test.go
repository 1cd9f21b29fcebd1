package trust

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/identity"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func digest(i int) string { return fmt.Sprintf("sha256:%064x", i) }

// certify records a certification change the way the API does: the
// status and its audit entry in one transaction.
func certify(t *testing.T, st *store.Store, d, status string) {
	t.Helper()
	if err := st.PutImage(t.Context(), store.Image{Digest: d, Repository: "r.example/app"}); err != nil {
		t.Fatal(err)
	}
	_, err := st.Audited(t.Context(), func(tx *store.Store) ([]audit.Entry, error) {
		return []audit.Entry{{Actor: "test", Action: "certification.set", Object: d}}, tx.SetCertification(t.Context(), d, status, "test")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFeed: from an empty audit log, a waiter is woken by a change with
// its digest; a waiter whose cursor is older than the ring asks the
// store and still gets every change; a poll without change returns at
// its wait with the current sequence number; MaxWaiters is enforced.
func TestFeed(t *testing.T) {
	st := openStore(t)
	f := NewFeed(st, 5*time.Millisecond, nil)
	f.Ring = 4
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go f.Run(ctx)
	_, seq, err := f.Wait(ctx, -1, 0)
	if err != nil || seq != 0 {
		t.Fatalf("first wait: %d %v", seq, err)
	}
	got := make(chan []string, 1)
	go func() {
		ds, _, err := f.Wait(ctx, seq, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- ds
	}()
	time.Sleep(20 * time.Millisecond)
	t1 := time.Now()
	certify(t, st, digest(1), store.Revoked)
	select {
	case ds := <-got:
		if len(ds) != 1 || ds[0] != digest(1) {
			t.Fatalf("woken with %v", ds)
		}
		t.Logf("woken %v after the change", time.Since(t1).Round(time.Millisecond))
	case <-time.After(2 * time.Second):
		t.Fatal("the waiter was not woken")
	}

	// Fill the ring past its size: a cursor from before it asks the store.
	for i := 2; i <= 40; i++ {
		certify(t, st, digest(i), store.Certified)
		if i%5 == 0 {
			waitFeed(t, f, int64(i)) // one ring entry per few changes
		}
	}
	waitFeed(t, f, 40)
	f.mu.Lock()
	start := f.start
	f.mu.Unlock()
	if start <= seq {
		t.Fatalf("the ring still covers seq %d (start %d)", seq, start)
	}
	ds, next, err := f.Wait(ctx, seq, 0)
	if err != nil || len(ds) != 40 || next != 40 {
		t.Fatalf("an old cursor: %d digests, next %d, %v", len(ds), next, err)
	}

	// No change: the poll returns at its wait with the current seq.
	t0 := time.Now()
	ds, again, err := f.Wait(ctx, next, 50*time.Millisecond)
	if err != nil || len(ds) != 0 || again != next || time.Since(t0) < 50*time.Millisecond {
		t.Fatalf("an idle poll: %v %d %v after %v", ds, again, err, time.Since(t0))
	}

	f.waiters.Store(MaxWaiters)
	if _, _, err := f.Wait(ctx, next, time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Fatalf("past MaxWaiters: %v", err)
	}
	f.waiters.Store(0)
}

func waitFeed(t *testing.T, f *Feed, seq int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		s := f.seq
		f.mu.Unlock()
		if s >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed reached seq %d, want %d", s, seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFacts reads certification, drift and heartbeat from the store.
func TestFacts(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	facts := Facts(st)
	w := identity.Workload{Node: "n1", Container: "c1", Image: digest(1)}
	f, err := facts(ctx, w)
	if err != nil || f.Certified || f.Revoked || f.Drifted || !f.Heartbeat.IsZero() {
		t.Fatalf("nothing known: %+v %v", f, err)
	}
	certify(t, st, digest(1), store.Certified)
	st.PutNode(ctx, store.Node{Name: "n1", Mode: "detect", State: "detecting-only", Containers: "[]"})
	if f, _ = facts(ctx, w); !f.Certified || f.Heartbeat.IsZero() || identity.Decide(f, time.Now(), time.Minute) != nil {
		t.Fatalf("certified, heard from: %+v", f)
	}
	st.AddRuntimeEvents(ctx, []store.RuntimeEvent{{Node: "n1", Spool: "s", Seq: 1, Time: time.Now(), Verdict: "refused", Path: "/tmp/x", Container: "c1"}})
	if f, _ = facts(ctx, w); !f.Drifted {
		t.Fatalf("a refused exec is drift: %+v", f)
	}
	// The same container id on another node has not drifted.
	if f, _ = facts(ctx, identity.Workload{Node: "n2", Container: "c1", Image: digest(1)}); f.Drifted {
		t.Fatal("drift of n1/c1 counted for n2/c1")
	}
	certify(t, st, digest(1), store.Revoked)
	if f, _ = facts(ctx, identity.Workload{Node: "n1", Container: "c2", Image: digest(1)}); !f.Revoked || f.Certified {
		t.Fatalf("revoked: %+v", f)
	}
}

// TestRegistry: Workload answers a live issuance, not a refused, expired
// or invalidated one, and falls back to another holder of the same ID.
func TestRegistry(t *testing.T) {
	now := time.Now()
	r := NewRegistry()
	r.Now = func() time.Time { return now }
	id := "spiffe://t.example/ns/a/sa/b"
	issue := func(node, c string, exp time.Time) {
		r.Note(identity.Record{Kind: "x509-svid", ID: id, Expiry: exp, Workload: identity.Workload{Node: node, Container: c, Image: digest(1)}})
	}
	if _, ok := r.Workload(id); ok {
		t.Fatal("nothing issued")
	}
	issue("n1", "c1", now.Add(time.Hour))
	issue("n2", "c2", now.Add(time.Hour))
	r.Note(identity.Record{Kind: "x509-svid", ID: id, Workload: identity.Workload{Node: "n2", Container: "c2", Image: digest(1)},
		Refusal: &identity.Refusal{Reason: identity.ReasonDrifted}})
	if w, ok := r.Workload(id); !ok || w.Container != "c1" {
		t.Fatalf("c2 was refused; c1 holds the ID: %+v %v", w, ok)
	}
	r.Note(identity.Record{Kind: "jwt-svid", ID: id, Workload: identity.Workload{Node: "n1", Container: "c1", Image: digest(1)}})
	if _, ok := r.Workload(id); !ok {
		t.Fatal("a JWT issuance replaced the X.509 decision")
	}
	r.Invalidate([]string{digest(1)})
	if _, ok := r.Workload(id); ok {
		t.Fatal("a digest whose certification changed still answers")
	}
	issue("n1", "c1", now.Add(-time.Second))
	if _, ok := r.Workload(id); ok {
		t.Fatal("an expired SVID answers")
	}
	if l := r.List(); len(l) != 2 || l[0].Node != "n1" || l[1].Reason != identity.ReasonDrifted {
		t.Fatalf("list: %+v", l)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				issue(fmt.Sprint("n", i), fmt.Sprint("c", j), now.Add(time.Hour))
				r.Workload(id)
			}
		}()
	}
	wg.Wait()
}
