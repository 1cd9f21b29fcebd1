package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// JobKind is the kind of the store jobs that carry the evidence to
// answer: queued in the transaction that stores the evidence (the drift
// events, the revocation's outbox), so none is lost across a crash.
const JobKind = "respond"

// Job is the payload of a respond job.
type Job struct {
	Trigger string `json:"trigger"` // TriggerDrift or TriggerRevoked
	// Event names the evidence for good: the first drift event's row, the
	// revocation's outbox job.
	Event string `json:"event"`
	// Drift: the container, on its node.
	Node      string `json:"node,omitempty"`
	Container string `json:"container,omitempty"`
	// The digest that drifted or was revoked.
	Digest string    `json:"digest"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
	// Revoked: the rollback reference (repository@digest), "" when none.
	Target string `json:"target,omitempty"`
}

// Enqueuer queues jobs (a store, or a view of one in a transaction).
type Enqueuer interface {
	EnqueueJob(ctx context.Context, kind string, payload []byte, runAfter time.Time) (int64, error)
}

// Enqueue queues j. A job queued twice (an outbox published again after a
// crash) answers nothing twice: responses are recorded under keys.
func Enqueue(ctx context.Context, q Enqueuer, j Job) error {
	_, err := EnqueueID(ctx, q, j)
	return err
}

// EnqueueID is Enqueue that returns the queued job's id.
func EnqueueID(ctx context.Context, q Enqueuer, j Job) (int64, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return 0, fmt.Errorf("queueing a %s response: %w", j.Trigger, err)
	}
	id, err := q.EnqueueJob(ctx, JobKind, b, time.Time{})
	if err != nil {
		return 0, fmt.Errorf("queueing a %s response: %w", j.Trigger, err)
	}
	return id, nil
}

// JobFinder finds a job on record (a store).
type JobFinder interface {
	LatestJob(ctx context.Context, kind string, parts ...string) (*store.Job, error)
}

// Revocation is the respond job the newest revocation of digest queued
// (run or not), on record in the job queue, or false when there is none:
// the event and rollback target a workload of the digest that the running
// inventory learns of later is answered with, so that what the
// revocation answered is not answered twice.
func Revocation(ctx context.Context, q JobFinder, digest string) (Job, bool, error) {
	trigger, _ := json.Marshal(TriggerRevoked)
	d, _ := json.Marshal(digest)
	j, err := q.LatestJob(ctx, JobKind, `"trigger":`+string(trigger), `"digest":`+string(d))
	if errors.Is(err, store.ErrNotFound) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("finding the revocation of %s: %w", digest, err)
	}
	var job Job
	if err := json.Unmarshal(j.Payload, &job); err != nil {
		return Job{}, false, fmt.Errorf("decoding respond job %d: %w", j.ID, err)
	}
	if job.Trigger != TriggerRevoked || job.Digest != digest {
		return Job{}, false, nil // a look-alike (SQLite's LIKE ignores case)
	}
	return job, true, nil
}

// Fleet is the running inventory the worker resolves workloads in.
type Fleet interface {
	Workload(node, container string) (fleet.Workload, bool)
	Workloads(f fleet.Filter) []fleet.Workload
	Node(name string) (fleet.Node, bool)
}

// Jobs is what the worker needs of the job queue.
type Jobs interface {
	ClaimJob(ctx context.Context, worker string, kinds ...string) (*store.Job, error)
	CompleteJob(ctx context.Context, j *store.Job) error
	FailJob(ctx context.Context, j *store.Job, cause error) error
}

// Worker answers the queued respond jobs.
type Worker struct {
	Engine   *Engine
	Fleet    Fleet
	Jobs     Jobs
	Instance string
	Poll     time.Duration // idle wait; Wake cuts it short
	Log      *slog.Logger
	// Parallel bounds the workloads of one revocation answered at once;
	// zero is 8.
	Parallel int

	once sync.Once
	wake chan struct{}
}

func (w *Worker) init() { w.once.Do(func() { w.wake = make(chan struct{}, 1) }) }

// Wake tells the worker a job was queued.
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run answers jobs until ctx is done.
func (w *Worker) Run(ctx context.Context) error {
	w.init()
	poll := w.Poll
	if poll <= 0 {
		poll = time.Second
	}
	for {
		j, err := w.Jobs.ClaimJob(ctx, w.Instance, JobKind)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, store.ErrNoJob):
			select {
			case <-ctx.Done():
				return nil
			case <-w.wake:
			case <-time.After(poll):
			}
			continue
		case err != nil:
			return fmt.Errorf("claiming a respond job: %w", err)
		}
		rctx := context.WithoutCancel(ctx)
		if herr := w.handle(ctx, j); herr != nil {
			w.log().Warn("answering runtime evidence", "job", j.ID, "attempt", j.Attempts, "err", herr)
			err = w.Jobs.FailJob(rctx, j, herr)
		} else {
			err = w.Jobs.CompleteJob(rctx, j)
		}
		if err != nil && !errors.Is(err, store.ErrClaimLost) {
			return err
		}
	}
}

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// errNotYet is a drift whose container the inventory does not know yet
// (its node's next heartbeat names it): tried again after a backoff.
var errNotYet = errors.New("the container is not in the running inventory yet")

func (w *Worker) handle(ctx context.Context, j *store.Job) error {
	var job Job
	if err := json.Unmarshal(j.Payload, &job); err != nil {
		return fmt.Errorf("decoding respond job %d: %w", j.ID, err)
	}
	switch job.Trigger {
	case TriggerDrift:
		wl, ok := w.Fleet.Workload(job.Node, job.Container)
		if !ok {
			if n, known := w.Fleet.Node(job.Node); known && n.LastHeartbeat.After(job.Time) {
				w.log().Info("drifted container no longer runs: nothing to answer", "node", job.Node, "container", job.Container)
				return nil
			}
			return fmt.Errorf("drift in %s/%s: %w", job.Node, job.Container, errNotYet)
		}
		_, err := w.Engine.Respond(ctx, Case{Trigger: TriggerDrift, Key: TriggerDrift, Reason: job.Reason, Workload: wl})
		return err
	case TriggerRevoked:
		return w.revoked(ctx, job)
	}
	return fmt.Errorf("respond job %d: unknown trigger %q", j.ID, job.Trigger)
}

// revoked answers every workload running the revoked digest, a few at a
// time; the first error is returned after all were tried (the job runs
// again, and what was answered is not answered twice).
func (w *Worker) revoked(ctx context.Context, job Job) error {
	wls := w.Fleet.Workloads(fleet.Filter{Image: job.Digest})
	par := w.Parallel
	if par <= 0 {
		par = 8
	}
	cases := make([]Case, len(wls))
	for i, wl := range wls {
		cases[i] = Case{Trigger: TriggerRevoked, Key: TriggerRevoked + ":" + job.Event, Reason: job.Reason, Workload: wl, Target: job.Target}
	}
	_, err := w.Engine.RespondAll(ctx, cases, par)
	return err
}
