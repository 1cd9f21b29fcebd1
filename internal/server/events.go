package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// events turns the outbox jobs that certification changes write in their
// own transaction (store.JobCertificationEvent) into notifications: one
// queued delivery per matching webhook, which the dispatcher sends. A
// change that committed is therefore published even if the process dies
// right after: the outbox job survives and is claimed on restart. The
// event id is the outbox job's, so a receiver can drop the duplicate a
// crash between publishing and completing may cause (at least once).
type events struct {
	store    *store.Store
	handler  *api.Handler
	log      *slog.Logger
	instance string
	poll     time.Duration
	// fleet, when set, is marked with revocations, names the workloads a
	// revocation hits, and their responses are queued (wakeRespond).
	fleet       *fleet.Index
	wakeRespond func()
	// late, when set, is told each revocation's respond job, which it
	// queues again for the workloads the inventory learns of later.
	late *lateRevocations
	// wake cuts the idle wait short: a revocation committed an outbox job.
	wake chan struct{}
}

// Wake tells the events task that an outbox job was committed.
func (e *events) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run claims and publishes outbox jobs until ctx is done.
func (e *events) Run(ctx context.Context) error {
	return store.RunJobsWoken(ctx, e.store, e.instance, []string{store.JobCertificationEvent}, e.poll, e.wake, e.handle)
}

// handle publishes one outbox job and records the outcome: a failure is
// retried with the store's backoff.
func (e *events) handle(ctx context.Context, j *store.Job) error {
	rctx := context.WithoutCancel(ctx)
	if perr := e.publish(ctx, j); perr != nil {
		e.log.Warn("publishing a certification event", "job", j.ID, "err", perr)
		if err := e.store.FailJob(rctx, j, perr); err != nil && !errors.Is(err, store.ErrClaimLost) {
			return err
		}
		return nil
	}
	if err := e.store.CompleteJob(rctx, j); err != nil && !errors.Is(err, store.ErrClaimLost) {
		return err
	}
	return nil
}

// publish queues the notifications of one outbox job: a revocation with
// its repository's rollback target (computed now, after the revoking
// transaction committed, so it never names a digest the same run
// revoked), or a grant.
func (e *events) publish(ctx context.Context, j *store.Job) error {
	var ce store.CertificationEvent
	if err := json.Unmarshal(j.Payload, &ce); err != nil {
		return fmt.Errorf("decoding event %d: %w", j.ID, err)
	}
	img, err := e.store.Image(ctx, ce.Digest)
	if err != nil {
		return err
	}
	var ev notify.Event
	switch ce.Status {
	case store.Revoked:
		target, err := (&reeval.Engine{Store: e.store}).RollbackTarget(ctx, img.Repository)
		if err != nil {
			return err
		}
		running, err := e.revokeRunning(ctx, j, ce, img.Repository, target)
		if err != nil {
			return err
		}
		if ev, err = api.RevocationEvent(ctx, e.store, ce.Digest, ce.Reason, ce.Time, target, running...); err != nil {
			return err
		}
	case store.Certified:
		if e.fleet != nil {
			e.fleet.Refresh(ce.Digest)
		}
		tags, err := e.store.Tags(ctx, img.Repository)
		if err != nil {
			return err
		}
		var names []string
		for _, t := range tags {
			if t.Digest == ce.Digest {
				names = append(names, t.Repository+":"+t.Tag)
			}
		}
		ev = notify.Granted(notify.Grant{Digest: ce.Digest, Repository: img.Repository, Tags: names, Reason: ce.Reason, Time: ce.Time})
	default:
		return nil
	}
	ev.ID = fmt.Sprintf("certification-%d", j.ID)
	_, err = notify.Publish(ctx, e.store, ev)
	return err
}

// revokeRunning marks a revoked digest in the running inventory, queues
// the response to every workload running it (rollback to repository@target
// where the policy allows) and returns those workloads for the
// notification. A workload of the digest that the inventory learns of
// later is answered with the same job (lateRevocations).
func (e *events) revokeRunning(ctx context.Context, j *store.Job, ce store.CertificationEvent, repository, target string) ([]notify.Running, error) {
	if e.fleet == nil {
		return nil, nil
	}
	e.fleet.SetCertification(ce.Digest, store.Revoked)
	e.fleet.Refresh(ce.Digest) // described again, after the revocation committed
	ws := e.fleet.Workloads(fleet.Filter{Image: ce.Digest})
	var out []notify.Running
	for _, w := range ws {
		out = append(out, notify.Running{Node: w.Node, Container: w.Container, Pod: w.Pod, PodNamespace: w.PodNamespace, Application: w.Application})
	}
	ref := ""
	if target != "" {
		ref = repository + "@" + target
	}
	job := respond.Job{Trigger: respond.TriggerRevoked, Event: fmt.Sprintf("certification-%d", j.ID),
		Digest: ce.Digest, Reason: ce.Reason, Time: ce.Time, Target: ref}
	if err := respond.Enqueue(ctx, e.store, job); err != nil {
		return nil, err
	}
	if e.late != nil {
		e.late.revoked(job)
	}
	if e.wakeRespond != nil {
		e.wakeRespond()
	}
	return out, nil
}
