package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// staleCheck is a replica's store whose look for an existing job ran
// before another replica queued it: JobExists (what schedule once asked
// before queueing) reports none whatever the table holds, the
// interleaving TestTwoReplicasPollOnce once hit.
type staleCheck struct{ *store.Store }

func (staleCheck) JobExists(context.Context, string, []byte) (bool, error) { return false, nil }

// TestScheduleSlotThatRanIsNotQueuedAgain: replica A queues the poll of a
// slot and a worker runs it to the end; replica B, which ticked in the same
// slot but looked before A queued, schedules it now. The slot is polled
// once: B queues nothing.
func TestScheduleSlotThatRanIsNotQueuedAgain(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	a := &watcher{store: st, log: log, interval: time.Minute}
	b := &watcher{store: staleCheck{st}, log: log, interval: time.Minute}
	tick := time.Date(2026, 11, 1, 10, 0, 30, 0, time.UTC)

	if err := a.schedule(ctx, tick); err != nil {
		t.Fatal(err)
	}
	j, err := st.ClaimJob(ctx, "replica-a/worker-1", JobPoll)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := b.schedule(ctx, tick.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	jobs, err := st.ListJobs(ctx, JobPoll, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		for _, j := range jobs {
			t.Logf("poll job %d %s: %s", j.ID, j.Payload, j.State)
		}
		t.Errorf("the slot has %d poll jobs, want 1", len(jobs))
	}
	// The next slot is queued as usual.
	if err := b.schedule(ctx, tick.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimJob(ctx, "replica-b/worker-1", JobPoll); err != nil {
		t.Errorf("the next slot: %v", err)
	}
}
