package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// JobKind is the kind of the store jobs that carry deliveries.
const JobKind = "notify"

// Delivery is the payload of a notify job: the event and the webhook it
// goes to. Both the id and the name must still match when it is
// delivered, so a webhook deleted and created again under another name
// (or a reused id) does not receive the old one's events.
type Delivery struct {
	Webhook int64  `json:"webhook"`
	Name    string `json:"name"`
	Event   Event  `json:"event"`
}

// Enqueuer queues jobs: the store.
type Enqueuer interface {
	EnqueueJob(ctx context.Context, kind string, payload []byte, runAfter time.Time) (int64, error)
}

// Publisher is what Publish needs from the store.
type Publisher interface {
	Enqueuer
	ListWebhooks(ctx context.Context) ([]store.Webhook, error)
}

// Publish queues ev for every webhook subscribed to its type and returns
// the delivery (job) ids, one per webhook; none when no webhook wants it.
// It fills a zero ID or Time. The deliveries are durable once Publish
// returns: a Dispatcher on any replica sends them, retrying with backoff.
// On an error the ids queued before it are returned with it.
func Publish(ctx context.Context, st Publisher, ev Event) ([]int64, error) {
	hooks, err := st.ListWebhooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("publishing %s: %w", ev.Type, err)
	}
	ids := []int64{}
	for _, w := range hooks {
		if !w.Wants(ev.Type) {
			continue
		}
		id, err := PublishTo(ctx, st, w, ev)
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// PublishTo queues ev for the webhook w alone, whatever w subscribes to
// (the test event), and returns the delivery id.
func PublishTo(ctx context.Context, st Enqueuer, w store.Webhook, ev Event) (int64, error) {
	if ev.ID == "" {
		ev.ID = NewID()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	payload, err := json.Marshal(Delivery{Webhook: w.ID, Name: w.Name, Event: ev})
	if err != nil {
		return 0, fmt.Errorf("publishing %s to webhook %q: %w", ev.Type, w.Name, err)
	}
	id, err := st.EnqueueJob(ctx, JobKind, payload, time.Time{})
	if err != nil {
		return 0, fmt.Errorf("publishing %s to webhook %q: %w", ev.Type, w.Name, err)
	}
	return id, nil
}
