package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// responsesSchema is the migration of the runtime responses (respond): a
// response is recorded, under a key that names it for good, before it is
// taken, and finished after; a restart finds it and neither repeats nor
// duplicates it.
var responsesSchema = `CREATE TABLE responses (
		id        {id},
		rkey      TEXT NOT NULL UNIQUE,
		cause     TEXT NOT NULL,
		action    TEXT NOT NULL,
		state     TEXT NOT NULL CHECK (state IN ('planned', 'done', 'failed', 'skipped')),
		dry_run   INTEGER NOT NULL DEFAULT 0,
		namespace TEXT NOT NULL DEFAULT '',
		pod       TEXT NOT NULL DEFAULT '',
		pod_uid   TEXT NOT NULL DEFAULT '',
		owner     TEXT NOT NULL DEFAULT '',
		node      TEXT NOT NULL DEFAULT '',
		container TEXT NOT NULL DEFAULT '',
		image     TEXT NOT NULL DEFAULT '',
		target    TEXT NOT NULL DEFAULT '',
		reason    TEXT NOT NULL DEFAULT '',
		detail    TEXT NOT NULL DEFAULT '',
		created   TEXT NOT NULL,
		finished  TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX responses_namespace ON responses (namespace, created);
	CREATE INDEX responses_owner ON responses (owner, created);`

// runtimeTreeSchema is the migration that records, with each runtime
// event, the process tree of the exec (the caller and its ancestors).
var runtimeTreeSchema = `ALTER TABLE runtime_events ADD COLUMN tree TEXT NOT NULL DEFAULT '';`

// Response states.
const (
	ResponsePlanned = "planned" // recorded, not yet taken (or the taking was cut)
	ResponseDone    = "done"    // taken (or, in dry-run, reported)
	ResponseFailed  = "failed"  // the orchestrator refused or failed it
	ResponseSkipped = "skipped" // a safety limit turned it into an alert
)

// Response is one runtime response: what triggered it, what the policy
// chose, and what became of it.
type Response struct {
	ID        int64     `json:"id"`
	Key       string    `json:"key"`
	Trigger   string    `json:"trigger"` // drift, revoked, end-of-life
	Action    string    `json:"action"`  // alert, replace, rollback, quarantine
	State     string    `json:"state"`
	DryRun    bool      `json:"dryRun,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Pod       string    `json:"pod,omitempty"`
	PodUID    string    `json:"podUID,omitempty"`
	Owner     string    `json:"owner,omitempty"` // Kind/name of the pod's controller
	Node      string    `json:"node,omitempty"`
	Container string    `json:"container,omitempty"`
	Image     string    `json:"image,omitempty"`  // the digest it ran
	Target    string    `json:"target,omitempty"` // rollback: the reference set
	Reason    string    `json:"reason,omitempty"`
	Detail    string    `json:"detail,omitempty"` // the outcome, or why skipped
	Created   time.Time `json:"created"`
	Finished  time.Time `json:"finished,omitzero"`
}

const responseColumns = `id, rkey, cause, action, state, dry_run, namespace, pod, pod_uid, owner, node, container,
	image, target, reason, detail, created, finished`

func scanResponse(row scanner) (Response, error) {
	var r Response
	var dry int64
	var created, finished string
	err := row.Scan(&r.ID, &r.Key, &r.Trigger, &r.Action, &r.State, &dry, &r.Namespace, &r.Pod, &r.PodUID, &r.Owner,
		&r.Node, &r.Container, &r.Image, &r.Target, &r.Reason, &r.Detail, &created, &finished)
	r.DryRun, r.Created, r.Finished = dry != 0, parseTime(created), parseTime(finished)
	return r, err
}

// RecordResponse stores r under r.Key unless a response with that key
// exists, and returns the stored one with created true when it is new.
func (s *Store) RecordResponse(ctx context.Context, r Response) (Response, bool, error) {
	if r.Key == "" {
		return Response{}, false, errors.New("recording a response: no key")
	}
	if r.Created.IsZero() {
		r.Created = s.now()
	}
	dry := 0
	if r.DryRun {
		dry = 1
	}
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO responses
		(rkey, cause, action, state, dry_run, namespace, pod, pod_uid, owner, node, container, image, target, reason, detail, created, finished)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (rkey) DO NOTHING RETURNING id`),
		r.Key, r.Trigger, r.Action, r.State, dry, r.Namespace, r.Pod, r.PodUID, r.Owner, r.Node, r.Container,
		r.Image, r.Target, r.Reason, r.Detail, formatTime(r.Created), formatTime(r.Finished)).Scan(&r.ID)
	if errors.Is(err, sql.ErrNoRows) {
		old, err := scanResponse(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+responseColumns+` FROM responses WHERE rkey = ?`), r.Key))
		if err != nil {
			return Response{}, false, fmt.Errorf("reading response %q: %w", r.Key, err)
		}
		return old, false, nil
	}
	if err != nil {
		return Response{}, false, fmt.Errorf("recording response %q: %w", r.Key, err)
	}
	r.Created = parseTime(formatTime(r.Created))
	return r, true, nil
}

// FinishResponse sets a response's final state and detail.
func (s *Store) FinishResponse(ctx context.Context, id int64, state, detail string) error {
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE responses SET state = ?, detail = ?, finished = ? WHERE id = ?`),
		state, detail, formatTime(s.now()), id)
	if err != nil {
		return fmt.Errorf("finishing response %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finishing response %d: %w", id, ErrNotFound)
	}
	return nil
}

// CountResponses counts the responses with action taken (not skipped)
// since since, in namespace (when not "") and of owner (when not "").
func (s *Store) CountResponses(ctx context.Context, namespace, owner, action string, since time.Time) (int, error) {
	where, args := `action = ? AND state <> ? AND created >= ?`, []any{action, ResponseSkipped, formatTime(since)}
	if namespace != "" {
		where += ` AND namespace = ?`
		args = append(args, namespace)
	}
	if owner != "" {
		where += ` AND owner = ?`
		args = append(args, owner)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*) FROM responses WHERE `+where), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting responses: %w", err)
	}
	return n, nil
}

// ResponsesPage lists up to limit responses newest first, after the one
// with id after (0: from the newest); namespace "" is every namespace.
func (s *Store) ResponsesPage(ctx context.Context, namespace string, after int64, limit int) ([]Response, error) {
	where, args := "1 = 1", []any{}
	if namespace != "" {
		where += " AND namespace = ?"
		args = append(args, namespace)
	}
	if after > 0 {
		where += " AND id < ?"
		args = append(args, after)
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT `+responseColumns+` FROM responses WHERE `+where+
		` ORDER BY id DESC LIMIT `+strconv.Itoa(max(limit, 1))), args...)
	return collect(rows, err, "responses", scanResponse)
}
