package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Actor is how the audit log names the responses.
const Actor = "system:respond"

// Orchestrator takes the actions on a cluster; Kubernetes is one.
type Orchestrator interface {
	Owner(ctx context.Context, t Target) (Owner, error)
	Replace(ctx context.Context, t Target) (string, error)
	Rollback(ctx context.Context, t Target, o Owner, image, from string) (string, error)
	Quarantine(ctx context.Context, t Target) (string, error)
}

// Auditor runs a change and its audit entries in one transaction
// (api.Auditor).
type Auditor interface {
	Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error
}

// Engine chooses, records and takes responses.
type Engine struct {
	Policy  *Policy
	Auditor Auditor
	// Orchestrator is nil when the server has no cluster to act on: every
	// action but alert is then skipped, with the reason.
	Orchestrator Orchestrator
	Now          func() time.Time
	Log          *slog.Logger

	mu       sync.Mutex
	inFlight map[string]bool // keys being answered in this process
}

// Case is one workload to answer: what happened to it (Trigger, Reason),
// the name of the evidence (Key: a drift's pod, a revocation's outbox
// job) and, for a revocation, the rollback reference (repository@digest;
// "" when the repository has no known-good digest).
type Case struct {
	Trigger  string
	Key      string
	Reason   string
	Workload fleet.Workload
	Target   string
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// errRetry marks an error worth trying the case again for (the API
// server unreachable), as opposed to a refusal.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

// Retryable reports whether Respond failed for a reason that may pass
// (the cluster unreachable): the case is worth trying again, and its
// recorded response is resumed then, not taken twice.
func Retryable(err error) bool {
	var r errRetry
	return errors.As(err, &r)
}

// Respond answers c: it chooses the action, applies the safety limits,
// records the response (audited and notified in one transaction) and,
// when it is to be taken, takes it and records the outcome. A case
// answered before (the same key) is not answered again: its response is
// returned, and resumed if the taking was cut.
func (e *Engine) Respond(ctx context.Context, c Case) (store.Response, error) {
	rs, err := e.RespondAll(ctx, []Case{c}, 1)
	return rs[0], err
}

// plan is one case on its way: the response it makes, the pod it acts on
// and the pod's owner.
type plan struct {
	r       store.Response
	t       Target
	owner   Owner
	created bool
}

// prepare chooses c's action and reads the pod's owner; it records
// nothing.
func (e *Engine) prepare(ctx context.Context, c Case) (*plan, error) {
	w := c.Workload
	r := store.Response{Trigger: c.Trigger, Action: e.Policy.Action(c.Trigger, w.PodNamespace, w.Application),
		State: store.ResponsePlanned, DryRun: e.Policy.DryRun, Namespace: w.PodNamespace, Pod: w.Pod, PodUID: w.PodUID,
		Node: w.Node, Container: w.Container, Image: w.Image, Reason: c.Reason}
	subject := w.PodUID
	if subject == "" {
		subject = w.Node + "/" + w.Container
	}
	p := &plan{t: Target{Namespace: w.PodNamespace, Pod: w.Pod, PodUID: w.PodUID, Container: w.ContainerName, Node: w.Node, Image: w.Image}}
	if r.Action == Rollback {
		p.t.Repository, _, _ = strings.Cut(c.Target, "@")
	}
	if r.Action != Alert {
		switch {
		case w.Pod == "":
			r.State, r.Detail = store.ResponseSkipped, "not a Kubernetes pod: only an alert is sent for a standalone container"
		case e.Orchestrator == nil:
			r.State, r.Detail = store.ResponseSkipped, "no Kubernetes API configured (bulwark server --kubeconfig)"
		default:
			o, err := e.Orchestrator.Owner(ctx, p.t)
			switch {
			case errors.Is(err, ErrPodGone):
				r.State, r.Detail = store.ResponseSkipped, "the pod no longer exists"
			case errors.Is(err, ErrNotOnNode), errors.Is(err, ErrNotRunning):
				r.State, r.Detail = store.ResponseSkipped, "refused: "+err.Error()
			case err != nil:
				r.Key = c.Key + "|" + subject
				p.r = r
				return p, classify(fmt.Errorf("finding the owner of pod %s/%s: %w", p.t.Namespace, p.t.Pod, err))
			}
			p.owner, r.Owner = o, o.String()
		}
	}
	if r.Action == Rollback && r.State == store.ResponsePlanned {
		r.Target = c.Target
		switch {
		case rollbackable[p.owner.Kind] == "":
			r.State, r.Detail = store.ResponseSkipped, "no Deployment, StatefulSet or DaemonSet owns the pod: nothing to roll back"
		case c.Target == "":
			r.State, r.Detail = store.ResponseSkipped, "the repository has no known-good digest to roll back to"
		default:
			subject = r.Owner // one rollback per controller and revocation
		}
	}
	r.Key = c.Key + "|" + subject
	p.r = r
	return p, nil
}

func (e *Engine) claim(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.inFlight[key] {
		return false
	}
	if e.inFlight == nil {
		e.inFlight = map[string]bool{}
	}
	e.inFlight[key] = true
	return true
}

func (e *Engine) release(key string) {
	e.mu.Lock()
	delete(e.inFlight, key)
	e.mu.Unlock()
}

// limit turns r into a skipped response when the namespace's rate or the
// owner's circuit breaker is spent. Dry runs count as responses: a dry
// run shows what the limits would let through.
func (e *Engine) limit(ctx context.Context, tx *store.Store, r *store.Response) error {
	p := e.Policy
	now := e.now()
	if r.Owner != "" {
		n, err := tx.CountResponses(ctx, r.Namespace, r.Owner, r.Action, now.Add(-p.BreakerSpan))
		if err != nil {
			return err
		}
		if n >= p.BreakerMax {
			r.State = store.ResponseSkipped
			r.Detail = fmt.Sprintf("circuit breaker open: %d %s responses on %s in the last %s (at most %d); alert only",
				n, r.Action, r.Owner, p.BreakerSpan, p.BreakerMax)
			return nil
		}
	}
	n, err := tx.CountResponses(ctx, r.Namespace, "", r.Action, now.Add(-p.RateWindow))
	if err != nil {
		return err
	}
	if n >= p.PerNamespace {
		r.State = store.ResponseSkipped
		r.Detail = fmt.Sprintf("rate limit: %d %s responses in namespace %s in the last %s (at most %d); alert only",
			n, r.Action, r.Namespace, p.RateWindow, p.PerNamespace)
	}
	return nil
}

// announce is the audit entry and the notification of rec, queued in tx.
func (e *Engine) announce(ctx context.Context, tx *store.Store, rec store.Response, action string) ([]audit.Entry, error) {
	ev := notify.Responded(notify.Response{ID: rec.ID, Trigger: rec.Trigger, Action: rec.Action, State: rec.State,
		DryRun: rec.DryRun, Namespace: rec.Namespace, Pod: rec.Pod, Owner: rec.Owner, Node: rec.Node,
		Container: rec.Container, Image: rec.Image, Target: rec.Target, Reason: rec.Reason, Detail: rec.Detail, Time: e.now()})
	ev.ID = fmt.Sprintf("response-%d-%s", rec.ID, rec.State)
	if _, err := notify.Publish(ctx, tx, ev); err != nil {
		return nil, err
	}
	after, _ := json.Marshal(rec)
	obj := "node:" + rec.Node + "/" + rec.Container
	if rec.Pod != "" {
		obj = "pod:" + rec.Namespace + "/" + rec.Pod
	}
	return []audit.Entry{{Actor: Actor, Action: action, Object: obj, After: after}}, nil
}

func describe(r store.Response) string {
	switch r.Action {
	case Rollback:
		return r.Owner + " to " + r.Target
	case Replace, Quarantine:
		return "pod " + r.Namespace + "/" + r.Pod
	}
	return ""
}

// classify marks an error that is not the API server's answer (a refused
// connection, a timeout) as retryable.
func classify(err error) error {
	var se *kube.StatusError
	if errors.As(err, &se) && se.Code < 500 && se.Code != 429 {
		return err
	}
	return errRetry{err}
}
