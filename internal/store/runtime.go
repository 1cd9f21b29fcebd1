package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// runtimeSchema is migration 7: what bulwark-agents report. A runtime
// event is named for good by (node, spool, seq), so a batch an agent
// sends again is stored once; nodes hold each agent's last heartbeat.
const runtimeSchema = `CREATE TABLE runtime_events (
		id        {id},
		node      TEXT NOT NULL,
		spool     TEXT NOT NULL,
		seq       BIGINT NOT NULL,
		time      TEXT NOT NULL,
		received  TEXT NOT NULL,
		verdict   TEXT NOT NULL CHECK (verdict IN ('refused', 'reported')),
		reason    TEXT NOT NULL DEFAULT '',
		pid       BIGINT NOT NULL DEFAULT 0,
		path      TEXT NOT NULL DEFAULT '',
		content   TEXT NOT NULL DEFAULT '',
		container TEXT NOT NULL DEFAULT '',
		namespace TEXT NOT NULL DEFAULT '',
		image     TEXT NOT NULL DEFAULT '',
		error     TEXT NOT NULL DEFAULT '',
		UNIQUE (node, spool, seq)
	);
	CREATE INDEX runtime_events_image ON runtime_events (image, id);
	CREATE INDEX runtime_events_container ON runtime_events (container, id);
	CREATE TABLE nodes (
		name         TEXT PRIMARY KEY,
		mode         TEXT NOT NULL,
		state        TEXT NOT NULL,
		reason       TEXT NOT NULL DEFAULT '',
		containers   TEXT NOT NULL DEFAULT '[]',
		spool_events BIGINT NOT NULL DEFAULT 0,
		spool_bytes  BIGINT NOT NULL DEFAULT 0,
		dropped      BIGINT NOT NULL DEFAULT 0,
		version      TEXT NOT NULL DEFAULT '',
		first_seen   TEXT NOT NULL,
		last_seen    TEXT NOT NULL
	);`

// RuntimeEvent is a drifted exec an agent reported.
type RuntimeEvent struct {
	ID        int64     `json:"id"`
	Node      string    `json:"node"`
	Spool     string    `json:"spool"`
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`     // on the node
	Received  time.Time `json:"received"` // by the server
	Verdict   string    `json:"verdict"`
	Reason    string    `json:"reason"`
	PID       int64     `json:"pid"`
	Path      string    `json:"path"`
	Content   string    `json:"content,omitempty"` // digest of what was to run
	Container string    `json:"container"`
	Namespace string    `json:"namespace"`
	Image     string    `json:"image"` // manifest digest
	Error     string    `json:"error,omitempty"`
	Tree      string    `json:"tree,omitempty"` // the exec's caller and its ancestors
}

// AddRuntimeEvents stores evs and returns those that were new (with their
// ids); an event whose (node, spool, seq) is stored already is skipped.
func (s *Store) AddRuntimeEvents(ctx context.Context, evs []RuntimeEvent) ([]RuntimeEvent, error) {
	var added []RuntimeEvent
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, e := range evs {
			e.Received = s.now()
			err := tx.QueryRowContext(ctx, s.d.q(`INSERT INTO runtime_events
				(node, spool, seq, time, received, verdict, reason, pid, path, content, container, namespace, image, error, tree)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (node, spool, seq) DO NOTHING RETURNING id`),
				e.Node, e.Spool, e.Seq, formatTime(e.Time), formatTime(e.Received), e.Verdict, e.Reason, e.PID,
				e.Path, e.Content, e.Container, e.Namespace, e.Image, e.Error, e.Tree).Scan(&e.ID)
			if errors.Is(err, sql.ErrNoRows) {
				continue // stored by an earlier send
			}
			if err != nil {
				return fmt.Errorf("storing runtime event %s/%s/%d: %w", e.Node, e.Spool, e.Seq, err)
			}
			added = append(added, e)
		}
		return nil
	})
	return added, err
}

// RuntimeFilter selects runtime events; empty fields select all.
type RuntimeFilter struct {
	Image, Node, Container string
}

// RuntimeEventsPage lists up to limit events matching f, newest first,
// after the event with id after (0: from the newest).
func (s *Store) RuntimeEventsPage(ctx context.Context, f RuntimeFilter, after int64, limit int) ([]RuntimeEvent, error) {
	where, args := "1 = 1", []any{}
	for _, c := range []struct{ col, v string }{{"image", f.Image}, {"node", f.Node}, {"container", f.Container}} {
		if c.v != "" {
			where += " AND " + c.col + " = ?"
			args = append(args, c.v)
		}
	}
	if after > 0 {
		where += " AND id < ?"
		args = append(args, after)
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, node, spool, seq, time, received, verdict, reason, pid,
		path, content, container, namespace, image, error, tree FROM runtime_events WHERE `+where+
		` ORDER BY id DESC LIMIT `+strconv.Itoa(max(limit, 1))), args...)
	return collect(rows, err, "runtime events", func(r scanner) (RuntimeEvent, error) {
		var e RuntimeEvent
		var at, rec string
		err := r.Scan(&e.ID, &e.Node, &e.Spool, &e.Seq, &at, &rec, &e.Verdict, &e.Reason, &e.PID,
			&e.Path, &e.Content, &e.Container, &e.Namespace, &e.Image, &e.Error, &e.Tree)
		e.Time, e.Received = parseTime(at), parseTime(rec)
		return e, err
	})
}

// Node is an agent's node as its last heartbeat described it.
type Node struct {
	Name        string    `json:"name"`
	Mode        string    `json:"mode"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	Containers  string    `json:"-"` // JSON array, as the API shows it
	SpoolEvents int64     `json:"spoolEvents"`
	SpoolBytes  int64     `json:"spoolBytes"`
	Dropped     int64     `json:"dropped"`
	Version     string    `json:"version,omitempty"`
	FirstSeen   time.Time `json:"firstSeen"`
	LastSeen    time.Time `json:"lastSeen"`
}

const nodeColumns = `name, mode, state, reason, containers, spool_events, spool_bytes, dropped, version, first_seen, last_seen`

func scanNode(row scanner) (Node, error) {
	var n Node
	var first, last string
	err := row.Scan(&n.Name, &n.Mode, &n.State, &n.Reason, &n.Containers, &n.SpoolEvents, &n.SpoolBytes,
		&n.Dropped, &n.Version, &first, &last)
	n.FirstSeen, n.LastSeen = parseTime(first), parseTime(last)
	return n, err
}

// PutNode records a heartbeat and returns the node as it was before (nil
// for a node not seen before). Use it in a transaction (InTx) so the
// read and the write go together.
func (s *Store) PutNode(ctx context.Context, n Node) (*Node, error) {
	prev, err := scanNode(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+nodeColumns+` FROM nodes WHERE name = ?`), n.Name))
	var before *Node
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("recording node %q: %w", n.Name, err)
	default:
		before = &prev
	}
	now := formatTime(s.now())
	_, err = s.db.ExecContext(ctx, s.d.q(`INSERT INTO nodes (`+nodeColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET mode = excluded.mode, state = excluded.state, reason = excluded.reason,
			containers = excluded.containers, spool_events = excluded.spool_events, spool_bytes = excluded.spool_bytes,
			dropped = excluded.dropped, version = excluded.version, last_seen = excluded.last_seen`),
		n.Name, n.Mode, n.State, n.Reason, n.Containers, n.SpoolEvents, n.SpoolBytes, n.Dropped, n.Version, now, now)
	if err != nil {
		return nil, fmt.Errorf("recording node %q: %w", n.Name, err)
	}
	return before, nil
}

// NodesPage lists up to limit nodes by name, after the node named after
// ("" from the first).
func (s *Store) NodesPage(ctx context.Context, after string, limit int) ([]Node, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT `+nodeColumns+` FROM nodes WHERE name > ? ORDER BY name LIMIT `+
		strconv.Itoa(max(limit, 1))), after)
	return collect(rows, err, "nodes", scanNode)
}
