package respond

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/failpoint"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// RespondAll answers cases together, parallel at a time for the calls to
// the cluster: the pods' owners are read, every response is recorded in
// one transaction (the limits counted as they are recorded, one audit
// entry and notification each), the planned ones are taken, and their
// outcomes recorded in one more transaction. It returns the response of
// each case, in order, and the errors of the cases worth trying again
// (the others were answered, and are not answered twice).
func (e *Engine) RespondAll(ctx context.Context, cases []Case, parallel int) ([]store.Response, error) {
	plans := make([]*plan, len(cases))
	errs := make([]error, len(cases))
	forEach(len(cases), parallel, func(i int) { plans[i], errs[i] = e.prepare(ctx, cases[i]) })
	out := make([]store.Response, len(cases))
	var mine []*plan
	for i, p := range plans {
		out[i] = p.r
		if errs[i] != nil {
			continue
		}
		// Two pods of one Deployment make one rollback; a case being
		// answered elsewhere in this process is left to it.
		if !e.claim(p.r.Key) {
			continue
		}
		defer e.release(p.r.Key)
		mine = append(mine, p)
	}
	if len(mine) > 0 {
		if err := e.recordAll(ctx, mine); err != nil {
			return out, err
		}
	}
	failpoint.Hit("respond.recorded")
	var taken []*plan
	var mu sync.Mutex
	var takeErrs []error
	forEach(len(mine), parallel, func(i int) {
		p := mine[i]
		if p.r.State != store.ResponsePlanned {
			return // answered (or answered before)
		}
		if !p.created {
			e.log().Info("resuming a recorded runtime response", "id", p.r.ID, "action", p.r.Action, "key", p.r.Key)
		}
		if err := e.take(ctx, p); err != nil {
			mu.Lock()
			takeErrs = append(takeErrs, err)
			mu.Unlock()
			return
		}
		mu.Lock()
		taken = append(taken, p)
		mu.Unlock()
	})
	if len(taken) > 0 {
		if err := e.finishAll(ctx, taken); err != nil {
			return out, err
		}
	}
	for i, p := range plans {
		out[i] = p.r
	}
	return out, errors.Join(append(errs, takeErrs...)...)
}

// forEach runs fn(0..n-1), at most parallel at a time.
func forEach(n, parallel int, fn func(int)) {
	if parallel < 1 {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// recordAll stores every plan's response, after the safety limits, with
// its audit entry and notification, in one transaction; a response that
// exists under its key is read back instead (created false).
func (e *Engine) recordAll(ctx context.Context, ps []*plan) error {
	recs := make([]store.Response, len(ps))
	created := make([]bool, len(ps))
	err := e.Auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		var entries []audit.Entry
		for i, p := range ps {
			r := p.r
			if r.State == store.ResponsePlanned && r.Action != Alert {
				if err := e.limit(ctx, tx, &r); err != nil {
					return nil, err
				}
			}
			if r.State == store.ResponsePlanned && (r.Action == Alert || r.DryRun) {
				r.State = store.ResponseDone
				r.Detail = "alert sent"
				if r.Action != Alert {
					r.Detail = "dry run: would " + r.Action + " " + describe(r)
				}
			}
			if r.State != store.ResponsePlanned {
				r.Finished = e.now()
			}
			var err error
			if recs[i], created[i], err = tx.RecordResponse(ctx, r); err != nil {
				return nil, err
			}
			if created[i] {
				es, err := e.announce(ctx, tx, recs[i], "runtime.response")
				if err != nil {
					return nil, err
				}
				entries = append(entries, es...)
			}
		}
		return entries, nil
	})
	if err != nil {
		return err
	}
	for i, p := range ps {
		p.r, p.created = recs[i], created[i]
	}
	return nil
}

// take takes a planned response; a refusal of the cluster fails it, an
// unreachable cluster leaves it planned (the error says to try again).
func (e *Engine) take(ctx context.Context, p *plan) error {
	rec, o := p.r, p.owner
	if o.Kind == "" && rec.Owner != "" { // resumed: the owner recorded with it
		o.Kind, o.Name, _ = strings.Cut(rec.Owner, "/")
	}
	var detail string
	var err error
	switch rec.Action {
	case Replace:
		detail, err = e.Orchestrator.Replace(ctx, p.t)
	case Rollback:
		detail, err = e.Orchestrator.Rollback(ctx, p.t, o, rec.Target, rec.Image)
	case Quarantine:
		detail, err = e.Orchestrator.Quarantine(ctx, p.t)
	default:
		err = fmt.Errorf("unknown action %q", rec.Action)
	}
	if err != nil {
		if err = classify(err); Retryable(err) {
			return fmt.Errorf("taking response %d (%s): %w", rec.ID, rec.Action, err)
		}
		p.r.State, p.r.Detail = store.ResponseFailed, err.Error()
	} else {
		p.r.State, p.r.Detail = store.ResponseDone, detail
	}
	p.r.Finished = e.now()
	return nil
}

// finishAll records the outcomes of taken responses in one transaction,
// each with its audit entry and notification.
func (e *Engine) finishAll(ctx context.Context, ps []*plan) error {
	err := e.Auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		var entries []audit.Entry
		for _, p := range ps {
			if err := tx.FinishResponse(ctx, p.r.ID, p.r.State, p.r.Detail); err != nil {
				return nil, err
			}
			es, err := e.announce(ctx, tx, p.r, "runtime.response."+p.r.State)
			if err != nil {
				return nil, err
			}
			entries = append(entries, es...)
		}
		return entries, nil
	})
	if err != nil {
		return err
	}
	for _, p := range ps {
		r := p.r
		e.log().Info("runtime response", "id", r.ID, "trigger", r.Trigger, "action", r.Action, "state", r.State,
			"namespace", r.Namespace, "pod", r.Pod, "owner", r.Owner, "detail", r.Detail)
	}
	return nil
}
