package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// WebhookStore is what the webhook routes need.
type WebhookStore interface {
	PutWebhook(ctx context.Context, w store.Webhook) (int64, error)
	Webhook(ctx context.Context, name string) (store.Webhook, error)
	ListWebhooks(ctx context.Context) ([]store.Webhook, error)
	DeleteWebhook(ctx context.Context, name string) error
	ListJobs(ctx context.Context, kind, state string, limit int) ([]store.Job, error)
}

// WebhookRequest is the body of POST /api/v1/webhooks.
type WebhookRequest struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Kind is "generic" (the default) or "slack".
	Kind string `json:"kind"`
	// Secret keys the HMAC signature: required for generic webhooks,
	// optional for Slack ones (which then get the same headers).
	Secret string `json:"secret"`
	// Events are the event types delivered; empty means all.
	Events []string `json:"events"`
}

// WebhookView is a webhook as the API shows it: the URL redacted, the
// secret never.
type WebhookView struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	URL     string    `json:"url"` // notify.RedactURL of the URL given
	Kind    string    `json:"kind"`
	Secret  string    `json:"secret,omitempty"` // "set" when deliveries are signed
	Events  []string  `json:"events"`
	Created time.Time `json:"created"`
}

// DeliveryView is a notify job as GET /api/v1/webhooks/deliveries shows
// it.
type DeliveryView struct {
	ID        int64     `json:"id"` // the X-Bulwark-Delivery header
	Webhook   string    `json:"webhook"`
	Event     string    `json:"event"` // the event type
	EventID   string    `json:"eventId"`
	Subject   string    `json:"subject"`
	State     string    `json:"state"` // queued, running, done or failed
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError,omitempty"`
	Time      time.Time `json:"time"` // the event's
	// NextAttempt is when a queued delivery is tried (again).
	NextAttempt *time.Time `json:"nextAttempt,omitempty"`
	// LastAttempt is when a running, done or failed delivery was last
	// claimed.
	LastAttempt *time.Time `json:"lastAttempt,omitempty"`
}

var webhookName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Secret length bounds: an HMAC key shorter than 16 bytes is guessable.
const (
	minWebhookSecret = 16
	maxWebhookSecret = 1024
)

func (h *Handler) webhookView(w store.Webhook) WebhookView {
	v := WebhookView{ID: w.ID, Name: w.Name, URL: w.URL, Kind: w.Kind, Events: nonNil(w.Events), Created: w.Created}
	if t, err := notify.OpenTarget(h.sealKey, w); err == nil && t.Secret != "" {
		v.Secret = "set"
	}
	return v
}

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req WebhookRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if !webhookName.MatchString(req.Name) {
		return errorf(http.StatusBadRequest, nil, `"name" must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`)
	}
	if req.Kind == "" {
		req.Kind = store.WebhookGeneric
	}
	if req.Kind != store.WebhookGeneric && req.Kind != store.WebhookSlack {
		return errorf(http.StatusBadRequest, nil, "unknown webhook kind %q (want generic or slack)", req.Kind)
	}
	if req.URL == "" {
		return errorf(http.StatusBadRequest, nil, `"url" is required`)
	}
	u, err := notify.ParseURL(req.URL)
	if err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	switch {
	case req.Secret == "" && req.Kind == store.WebhookGeneric:
		return errorf(http.StatusBadRequest, nil, `"secret" is required for a generic webhook (deliveries are signed with it)`)
	case req.Secret != "" && (len(req.Secret) < minWebhookSecret || len(req.Secret) > maxWebhookSecret):
		return errorf(http.StatusBadRequest, nil, `"secret" must be %d to %d bytes`, minWebhookSecret, maxWebhookSecret)
	}
	events := []string{}
	for _, e := range req.Events {
		if !notify.KnownType(e) {
			return errorf(http.StatusBadRequest, nil, "unknown event type %q (want one of %v)", e, notify.Types)
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	if h.sealKey == nil {
		return errorf(http.StatusServiceUnavailable, notify.ErrNoKey, "the server has no secret key to seal webhook secrets with")
	}
	sealed, err := notify.SealTarget(h.sealKey, req.Name, notify.Target{URL: u.String(), Secret: req.Secret})
	if err != nil {
		return err
	}
	var before []byte
	switch old, err := h.store.Webhook(ctx, req.Name); {
	case err == nil:
		before, _ = json.Marshal(h.webhookView(old))
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if _, err := h.store.PutWebhook(ctx, store.Webhook{
		Name: req.Name, URL: notify.RedactURL(u.String()), Kind: req.Kind, Secret: sealed, Events: events,
	}); err != nil {
		return err
	}
	stored, err := h.store.Webhook(ctx, req.Name)
	if err != nil {
		return err
	}
	v := h.webhookView(stored)
	after, _ := json.Marshal(v)
	if err := h.auditor.Append(ctx, audit.Entry{
		Actor: principal(ctx).Actor(), Action: "webhook.put", Object: "webhook:" + req.Name, Before: before, After: after,
	}); err != nil {
		return err
	}
	h.log.Info("webhook stored", "webhook", req.Name, "kind", req.Kind, "url", v.URL, "actor", principal(ctx).Actor())
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	hooks, err := h.store.ListWebhooks(r.Context())
	if err != nil {
		return err
	}
	out := make([]WebhookView, 0, len(hooks))
	for _, hook := range hooks {
		out = append(out, h.webhookView(hook))
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
	return nil
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	old, err := h.store.Webhook(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "webhook %q not found", name)
	}
	if err != nil {
		return err
	}
	if err := h.store.DeleteWebhook(ctx, name); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "webhook %q not found", name)
	} else if err != nil {
		return err
	}
	before, _ := json.Marshal(h.webhookView(old))
	if err := h.auditor.Append(ctx, audit.Entry{
		Actor: principal(ctx).Actor(), Action: "webhook.delete", Object: "webhook:" + name, Before: before,
	}); err != nil {
		return err
	}
	h.log.Info("webhook deleted", "webhook", name, "actor", principal(ctx).Actor())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// testWebhook queues a webhook.test event for the named webhook alone.
func (h *Handler) testWebhook(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	hook, err := h.store.Webhook(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "webhook %q not found", name)
	}
	if err != nil {
		return err
	}
	ev := notify.Test(name)
	id, err := notify.PublishTo(ctx, h.store, hook, ev)
	if err != nil {
		return err
	}
	after, _ := json.Marshal(map[string]any{"delivery": id, "event": ev.ID})
	if err := h.auditor.Append(ctx, audit.Entry{
		Actor: principal(ctx).Actor(), Action: "webhook.test", Object: "webhook:" + name, After: after,
	}); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/jobs/"+strconv.FormatInt(id, 10))
	writeJSON(w, http.StatusAccepted, map[string]any{"delivery": id, "event": ev.ID, "state": store.JobQueued})
	return nil
}

// maxDeliveries bounds GET /api/v1/webhooks/deliveries.
const maxDeliveries = 1000

// listDeliveries lists notify jobs, newest first: ?state= filters by
// state, ?webhook= by webhook name (among the ?limit= newest, default 100).
func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", store.JobQueued, store.JobRunning, store.JobDone, store.JobFailed:
	default:
		return errorf(http.StatusBadRequest, nil, "unknown state %q (want queued, running, done or failed)", state)
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDeliveries {
			return errorf(http.StatusBadRequest, err, "limit %q: want 1 to %d", s, maxDeliveries)
		}
		limit = n
	}
	jobs, err := h.store.ListJobs(r.Context(), notify.JobKind, state, limit)
	if err != nil {
		return err
	}
	webhook := q.Get("webhook")
	out := []DeliveryView{}
	for _, j := range jobs {
		var dl notify.Delivery
		if err := json.Unmarshal(j.Payload, &dl); err != nil {
			h.log.Warn("undecodable delivery payload", "job", j.ID, "err", err)
		}
		if webhook != "" && dl.Name != webhook {
			continue
		}
		v := DeliveryView{
			ID: j.ID, Webhook: dl.Name, Event: dl.Event.Type, EventID: dl.Event.ID, Subject: dl.Event.Subject,
			State: j.State, Attempts: j.Attempts, LastError: j.Error, Time: dl.Event.Time,
		}
		if j.State == store.JobQueued {
			v.NextAttempt = &j.RunAfter
		} else if !j.ClaimedAt.IsZero() {
			v.LastAttempt = &j.ClaimedAt
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
	return nil
}

// Notify publishes ev to the subscribed webhooks. The change it reports
// is already committed, so a failure to queue is logged, not returned:
// the change stays visible in the API and the audit log.
func (h *Handler) Notify(ctx context.Context, ev notify.Event) {
	ids, err := notify.Publish(ctx, h.store, ev)
	if err != nil {
		h.log.Error("queueing notifications", "event", ev.Type, "subject", ev.Subject, "queued", len(ids), "err", err)
		return
	}
	if len(ids) > 0 {
		h.log.Info("notifications queued", "event", ev.Type, "subject", ev.Subject, "deliveries", ids)
	}
}

// RevocationEvent is the certification.revoked event of digest, revoked
// for reason at time at, with the repository's rollback target (a digest,
// "" when there is none): the repository and the tags of both digests are
// read from the store.
func RevocationEvent(ctx context.Context, st Store, digest, reason string, at time.Time, rollbackTarget string, running ...notify.Running) (notify.Event, error) {
	rv := notify.Revocation{Digest: digest, Reason: reason, Time: at, RollbackTarget: rollbackTarget, Running: running}
	img, err := st.Image(ctx, digest)
	if err != nil {
		return notify.Event{}, err
	}
	rv.Repository = img.Repository
	tags, err := st.Tags(ctx, img.Repository)
	if err != nil {
		return notify.Event{}, err
	}
	for _, t := range tags {
		switch t.Digest {
		case digest:
			rv.Tags = append(rv.Tags, t.Tag)
		case rollbackTarget:
			rv.RollbackTags = append(rv.RollbackTags, t.Tag)
		}
	}
	return notify.Revoked(rv), nil
}
