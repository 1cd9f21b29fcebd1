package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook kinds.
const (
	WebhookGeneric = "generic" // signed JSON event
	WebhookSlack   = "slack"   // Slack-compatible incoming webhook
)

// Webhook is a notification target. URL is what may be shown (the caller
// stores a redacted form when the full URL carries a token); Secret is
// ciphertext the caller sealed with the server's key: the store never sees
// the key or the plaintext, as for Registry.Credentials.
type Webhook struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	URL     string    `json:"url"`
	Kind    string    `json:"kind"`
	Secret  []byte    `json:"-"`
	Events  []string  `json:"events"` // event types delivered; empty means all
	Created time.Time `json:"created"`
}

// Wants reports whether the webhook subscribes to events of type typ.
func (w Webhook) Wants(typ string) bool {
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == typ {
			return true
		}
	}
	return false
}

// PutWebhook adds the webhook named w.Name or replaces its URL, kind,
// secret and events, and returns its id.
func (s *Store) PutWebhook(ctx context.Context, w Webhook) (int64, error) {
	if w.Kind != WebhookGeneric && w.Kind != WebhookSlack {
		return 0, fmt.Errorf("storing webhook %q: unknown kind %q", w.Name, w.Kind)
	}
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO webhooks (name, url, kind, secret, events, created)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET url = excluded.url, kind = excluded.kind,
			secret = excluded.secret, events = excluded.events
		RETURNING id`), w.Name, w.URL, w.Kind, w.Secret, strings.Join(w.Events, ","), formatTime(s.now())).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("storing webhook %q: %w", w.Name, err)
	}
	return id, nil
}

const webhookColumns = `id, name, url, kind, secret, events, created`

func scanWebhook(r scanner) (Webhook, error) {
	var (
		w               Webhook
		events, created string
	)
	if err := r.Scan(&w.ID, &w.Name, &w.URL, &w.Kind, &w.Secret, &events, &created); err != nil {
		return Webhook{}, err
	}
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	w.Created = parseTime(created)
	return w, nil
}

// Webhook returns the webhook called name, or ErrNotFound.
func (s *Store) Webhook(ctx context.Context, name string) (Webhook, error) {
	w, err := scanWebhook(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+webhookColumns+` FROM webhooks WHERE name = ?`), name))
	if errors.Is(err, sql.ErrNoRows) {
		return Webhook{}, fmt.Errorf("reading webhook %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("reading webhook %q: %w", name, err)
	}
	return w, nil
}

// WebhookByID returns the webhook with id, or ErrNotFound.
func (s *Store) WebhookByID(ctx context.Context, id int64) (Webhook, error) {
	w, err := scanWebhook(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Webhook{}, fmt.Errorf("reading webhook %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("reading webhook %d: %w", id, err)
	}
	return w, nil
}

// ListWebhooks returns every webhook, by name, secrets included
// (ciphertext).
func (s *Store) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing webhooks: %w", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("listing webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook removes the webhook called name, or returns ErrNotFound.
// Deliveries already queued for it are dropped by the dispatcher when it
// finds the webhook gone.
func (s *Store) DeleteWebhook(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM webhooks WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("deleting webhook %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("deleting webhook %q: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("deleting webhook %q: %w", name, ErrNotFound)
	}
	return nil
}

// ListJobs returns up to limit jobs of kind, newest first, only those in
// state when it is not empty. limit <= 0 means 100.
func (s *Store) ListJobs(ctx context.Context, kind, state string, limit int) ([]Job, error) {
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE kind = ?`
	args := []any{kind}
	if state != "" {
		query += ` AND state = ?`
		args = append(args, state)
	}
	query += ` ORDER BY id DESC LIMIT ` + strconv.Itoa(limit)
	rows, err := s.db.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("listing %s jobs: %w", kind, err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("listing %s jobs: %w", kind, err)
		}
		out = append(out, *j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing %s jobs: %w", kind, err)
	}
	return out, nil
}

// AbandonJob marks the job j, as ClaimJob returned it, failed for good with
// cause, whatever its attempts: for failures a retry cannot fix (a
// receiver answering 404, a webhook deleted meanwhile). Like FailJob it
// fails with ErrClaimLost when the claim is no longer j's.
func (s *Store) AbandonJob(ctx context.Context, j *Job, cause error) error {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	return s.finishJob(ctx, j, `UPDATE jobs SET state = 'failed', error = ?
		WHERE id = ? AND state = 'running' AND attempts = ?`, msg, j.ID, j.Attempts)
}
