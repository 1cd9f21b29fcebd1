package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

func TestJobLifecycle(t *testing.T) { eachBackend(t, testJobLifecycle) }

func testJobLifecycle(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	scan, err := s.EnqueueJob(ctx, "scan", []byte(`{"digest":"sha256:aaa"}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	later, err := s.EnqueueJob(ctx, "poll", nil, c.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimJob(ctx, "w1", "poll"); !errors.Is(err, ErrNoJob) {
		t.Errorf("claimed a poll job before its run_after: %v", err)
	}
	j, err := s.ClaimJob(ctx, "w1", "reevaluate", "scan")
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != scan || j.Kind != "scan" || string(j.Payload) != `{"digest":"sha256:aaa"}` ||
		j.State != JobRunning || j.Attempts != 1 || j.ClaimedBy != "w1" || !j.ClaimedAt.Equal(c.Now()) {
		t.Errorf("ClaimJob = %+v", j)
	}
	if _, err := s.ClaimJob(ctx, "w2", "scan"); !errors.Is(err, ErrNoJob) {
		t.Errorf("a running job was claimed again: %v", err)
	}
	if err := s.CompleteJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(ctx, j); !errors.Is(err, ErrClaimLost) {
		t.Errorf("completing a done job: %v, want ErrClaimLost", err)
	}
	if j, _ := s.Job(ctx, scan); j.State != JobDone {
		t.Errorf("state after CompleteJob = %s", j.State)
	}
	c.Advance(time.Minute)
	j, err = s.ClaimJob(ctx, "w2") // any kind
	if err != nil || j.ID != later {
		t.Errorf("ClaimJob(any kind) = %+v, %v; want the poll job", j, err)
	}
}

func TestFailJobBacksOff(t *testing.T) { eachBackend(t, testFailJobBacksOff) }

func testFailJobBacksOff(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	s.MaxAttempts = 3
	id, err := s.EnqueueJob(ctx, "scan", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		j, err := s.ClaimJob(ctx, "w", "scan")
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if j.Attempts != attempt {
			t.Errorf("attempt %d: Attempts = %d", attempt, j.Attempts)
		}
		if err := s.FailJob(ctx, j, fmt.Errorf("registry down (%d)", attempt)); err != nil {
			t.Fatal(err)
		}
		j, _ = s.Job(ctx, id)
		if attempt == 3 {
			if j.State != JobFailed || j.Error != "registry down (3)" {
				t.Errorf("after the last attempt: %+v, want failed", j)
			}
			break
		}
		wait := time.Duration(1<<attempt) * time.Second
		if j.State != JobQueued || !j.RunAfter.Equal(c.Now().Add(wait)) || j.Error != fmt.Sprintf("registry down (%d)", attempt) {
			t.Errorf("after failure %d: %+v, want queued, run after %v", attempt, j, wait)
		}
		c.Advance(wait - time.Millisecond)
		if _, err := s.ClaimJob(ctx, "w", "scan"); !errors.Is(err, ErrNoJob) {
			t.Errorf("claimed during the backoff: %v", err)
		}
		c.Advance(time.Millisecond)
	}
	if _, err := s.ClaimJob(ctx, "w"); !errors.Is(err, ErrNoJob) {
		t.Errorf("a failed job was claimed: %v", err)
	}
	if got := Backoff(40); got != MaxBackoff {
		t.Errorf("Backoff(40) = %v, want the cap", got)
	}
}

func TestRequeueStale(t *testing.T) { eachBackend(t, testRequeueStale) }

func testRequeueStale(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	id, _ := s.EnqueueJob(ctx, "reevaluate", nil, time.Time{})
	stale, err := s.ClaimJob(ctx, "dead-worker")
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(10 * time.Minute)
	n, err := s.RequeueStale(ctx, c.Now().Add(-5*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("RequeueStale = %d, %v", n, err)
	}
	j, err := s.ClaimJob(ctx, "w2")
	if err != nil || j.ID != id || j.Attempts != 2 {
		t.Fatalf("ClaimJob after requeue = %+v, %v", j, err)
	}
	// The first worker comes back: its claim is gone, the new one stands.
	if err := s.CompleteJob(ctx, stale); !errors.Is(err, ErrClaimLost) {
		t.Errorf("CompleteJob with a lost claim: %v, want ErrClaimLost", err)
	}
	if err := s.FailJob(ctx, stale, errors.New("late")); !errors.Is(err, ErrClaimLost) {
		t.Errorf("FailJob with a lost claim: %v, want ErrClaimLost", err)
	}
	if err := s.CompleteJob(ctx, j); err != nil {
		t.Error(err)
	}
}

// TestClaimJobConcurrent claims 100 jobs from 8 goroutines: each job is
// claimed exactly once.
func TestClaimJobConcurrent(t *testing.T) { eachBackend(t, testClaimJobConcurrent) }

func testClaimJobConcurrent(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	const jobs, workers = 100, 8
	for i := range jobs {
		if _, err := s.EnqueueJob(ctx, "scan", fmt.Appendf(nil, "%d", i), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	workerStores := map[string]*Store{}
	for w := range workers {
		workerStores[fmt.Sprintf("w%d", w)] = s
	}
	claimed := claimAll(t, workerStores)
	if len(claimed) != jobs {
		t.Errorf("%d jobs claimed, want %d", len(claimed), jobs)
	}
	var done int
	s.DB().QueryRow(`SELECT COUNT(*) FROM jobs WHERE state = 'done' AND attempts = 1`).Scan(&done)
	if done != jobs {
		t.Errorf("%d jobs done after one attempt, want %d", done, jobs)
	}
}

// claimAll runs one goroutine per named worker, each claiming and
// completing "scan" jobs on its store until none is left, and returns who
// claimed each job. A job claimed twice is an error.
func claimAll(t *testing.T, workers map[string]*Store) map[int64]string {
	t.Helper()
	ctx := context.Background()
	var (
		mu      sync.Mutex
		claimed = map[int64]string{}
		wg      sync.WaitGroup
	)
	for name, s := range workers {
		wg.Go(func() {
			for {
				j, err := s.ClaimJob(ctx, name, "scan")
				if errors.Is(err, ErrNoJob) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := claimed[j.ID]; dup {
					t.Errorf("job %d claimed by %s and %s", j.ID, prev, name)
				}
				claimed[j.ID] = name
				mu.Unlock()
				if err := s.CompleteJob(ctx, j); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	return claimed
}

func TestPendingJob(t *testing.T) { eachBackend(t, testPendingJob) }

func testPendingJob(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	p := []byte(`{"image":"r.example/app@sha256:aaa"}`)
	if _, ok, err := s.PendingJob(ctx, "scan", p); err != nil || ok {
		t.Fatalf("PendingJob on an empty queue = %v, %v", ok, err)
	}
	id, err := s.EnqueueJob(ctx, "scan", p, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.PendingJob(ctx, "scan", p); err != nil || !ok || got != id {
		t.Errorf("PendingJob queued = %d, %v, %v; want %d", got, ok, err, id)
	}
	if _, ok, _ := s.PendingJob(ctx, "poll", p); ok {
		t.Error("PendingJob matched another kind")
	}
	if _, ok, _ := s.PendingJob(ctx, "scan", []byte(`{"image":"other"}`)); ok {
		t.Error("PendingJob matched another payload")
	}
	j, err := s.ClaimJob(ctx, "w1", "scan")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.PendingJob(ctx, "scan", p); err != nil || !ok || got != id {
		t.Errorf("PendingJob running = %d, %v, %v; want %d", got, ok, err, id)
	}
	if err := s.CompleteJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.PendingJob(ctx, "scan", p); err != nil || ok {
		t.Errorf("PendingJob after done = %v, %v", ok, err)
	}
}

// EnqueueJobOnce queues one pending job per kind and payload, also under
// concurrent callers, and queues again once the job finished.
func TestEnqueueJobOnce(t *testing.T) { eachBackend(t, testEnqueueJobOnce) }

func testEnqueueJobOnce(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	payload := []byte(`{"image":"r/app@sha256:aa"}`)
	var (
		mu      sync.Mutex
		ids     = map[int64]bool{}
		created int
		g       errgroup.Group
	)
	for range 8 {
		g.Go(func() error {
			id, ok, err := s.EnqueueJobOnce(ctx, "scan", payload, time.Time{})
			mu.Lock()
			defer mu.Unlock()
			ids[id] = true
			if ok {
				created++
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || created != 1 {
		t.Fatalf("8 concurrent EnqueueJobOnce: ids %v, %d created; want one", ids, created)
	}
	j, err := s.ClaimJob(ctx, "w", "scan")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.EnqueueJobOnce(ctx, "scan", payload, time.Time{}); ok {
		t.Error("queued while the same job is running")
	}
	if err := s.CompleteJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := s.EnqueueJobOnce(ctx, "scan", payload, time.Time{}); err != nil || !ok || ids[id] {
		t.Errorf("after completion: id %d, queued %v, %v; want a new job", id, ok, err)
	}
	if _, ok, _ := s.EnqueueJobOnce(ctx, "scan", []byte(`{"image":"other"}`), time.Time{}); !ok {
		t.Error("another payload was not queued")
	}
}

// DoneJob finds a finished job by payload; DropJob removes a claimed job
// that duplicates it, under its claim only.
func TestDoneAndDropJob(t *testing.T) { eachBackend(t, testDoneAndDropJob) }

func testDoneAndDropJob(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	payload := []byte(`{"changes":"abc","records":1}`)
	if _, ok, err := s.DoneJob(ctx, "reevaluate", payload); err != nil || ok {
		t.Fatalf("DoneJob on an empty queue: %v %v", ok, err)
	}
	s.EnqueueJobOnce(ctx, "reevaluate", payload, time.Time{})
	j, err := s.ClaimJobWithPayload(ctx, "a", "reevaluate", payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimJobWithPayload(ctx, "b", "reevaluate", payload); !errors.Is(err, ErrNoJob) {
		t.Errorf("a running job was claimed again: %v", err)
	}
	if _, ok, _ := s.DoneJob(ctx, "reevaluate", payload); ok {
		t.Error("a running job counts as done")
	}
	if err := s.CompleteJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := s.DoneJob(ctx, "reevaluate", payload); err != nil || !ok || id != j.ID {
		t.Errorf("DoneJob = %d %v %v, want %d", id, ok, err, j.ID)
	}
	// A duplicate queued after it is dropped by its claimer.
	s.EnqueueJobOnce(ctx, "reevaluate", payload, time.Time{})
	dup, err := s.ClaimJobWithPayload(ctx, "b", "reevaluate", payload)
	if err != nil {
		t.Fatal(err)
	}
	stale := *dup
	stale.Attempts++
	if err := s.DropJob(ctx, &stale); !errors.Is(err, ErrClaimLost) {
		t.Errorf("DropJob under another claim: %v", err)
	}
	if err := s.DropJob(ctx, dup); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job(ctx, dup.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped job still there: %v", err)
	}
}

// EnqueueSlotJob queues a slot's poll once for all time: concurrent callers
// queue one job, and once it ran (done or failed) the slot is not queued
// again; EnqueueJobOnce no longer takes poll jobs.
func TestEnqueueSlotJob(t *testing.T) { eachBackend(t, testEnqueueSlotJob) }

func testEnqueueSlotJob(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	slot := []byte(`{"slot":"2026-11-01T10:00:00Z"}`)
	var (
		mu      sync.Mutex
		created []int64
		g       errgroup.Group
	)
	for range 8 {
		g.Go(func() error {
			id, ok, err := s.EnqueueSlotJob(ctx, "poll", slot)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				created = append(created, id)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 {
		t.Fatalf("8 concurrent EnqueueSlotJob queued %v; want one job", created)
	}
	j, err := s.ClaimJob(ctx, "a", "poll")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.EnqueueSlotJob(ctx, "poll", slot); ok {
		t.Error("queued while the slot's poll is running")
	}
	if err := s.CompleteJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := s.EnqueueSlotJob(ctx, "poll", slot); err != nil || ok {
		t.Errorf("after the slot's poll ran: id %d, queued %v, %v; want nothing queued", id, ok, err)
	}
	next := []byte(`{"slot":"2026-11-01T10:01:00Z"}`)
	if _, ok, err := s.EnqueueSlotJob(ctx, "poll", next); err != nil || !ok {
		t.Errorf("the next slot: queued %v, %v", ok, err)
	}
	if _, _, err := s.EnqueueSlotJob(ctx, "scan", next); err == nil {
		t.Error("EnqueueSlotJob took a scan job")
	}
	if _, _, err := s.EnqueueJobOnce(ctx, "poll", next, time.Time{}); err == nil {
		t.Error("EnqueueJobOnce took a poll job")
	}
}

// Migration 5 keeps the first job of a slot an older version queued
// twice, and makes the slot unique from then on.
func TestMigrationDedupesPollSlots(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	// The schema as version 4 left it: poll slots unique only while
	// pending. Built by version 4's migrations, so that the ones appended
	// since run on it as on a real old database.
	var s *Store
	var err error
	olderSchema(4, func() { s, err = Open(ctx, path) })
	if err != nil {
		t.Fatal(err)
	}
	slot := []byte(`{"slot":"2026-11-01T10:00:00Z"}`)
	for _, state := range []string{"done", "queued"} {
		if _, err := s.DB().ExecContext(ctx, `INSERT INTO jobs (kind, payload, state, run_after, created) VALUES ('poll', ?, ?, '', '')`, slot, state); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	jobs, err := s.ListJobs(ctx, "poll", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].State != JobDone {
		t.Errorf("after migrating: %+v; want the first (done) job only", jobs)
	}
	if _, ok, err := s.EnqueueSlotJob(ctx, "poll", slot); err != nil || ok {
		t.Errorf("the migrated slot was queued again: %v, %v", ok, err)
	}
}
