package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// NodeLastSeen is when node's agent was last heard from (its last
// heartbeat); zero when it never was.
func (s *Store) NodeLastSeen(ctx context.Context, node string) (time.Time, error) {
	var last string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT last_seen FROM nodes WHERE name = ?`), node).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the last heartbeat of node %q: %w", node, err)
	}
	return parseTime(last), nil
}

// ContainerDrift returns the first drift event (refused or reported) an
// agent of node reported for container, or nil when there is none. A
// refused exec counts: the container tried to run what its image does not
// hold.
func (s *Store) ContainerDrift(ctx context.Context, node, container string) (*RuntimeEvent, error) {
	var e RuntimeEvent
	var at, rec string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT id, node, spool, seq, time, received, verdict, reason, pid,
		path, content, container, namespace, image, error FROM runtime_events
		WHERE container = ? AND node = ? ORDER BY id LIMIT 1`), container, node).Scan(&e.ID, &e.Node, &e.Spool, &e.Seq,
		&at, &rec, &e.Verdict, &e.Reason, &e.PID, &e.Path, &e.Content, &e.Container, &e.Namespace, &e.Image, &e.Error)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the drift of container %q on node %q: %w", container, node, err)
	}
	e.Time, e.Received = parseTime(at), parseTime(rec)
	return &e, nil
}

// CertificationChangesFrom is CertificationChanges, except that seq 0
// lists the changes from the first audit entry (the identity feed starts
// from an empty log too; CertificationChanges(0) answers only the newest
// sequence number, as the admission feed's first poll wants).
func (s *Store) CertificationChangesFrom(ctx context.Context, seq int64) ([]string, int64, error) {
	if seq > 0 {
		return s.CertificationChanges(ctx, seq)
	}
	_, last, err := s.CertificationChanges(ctx, 0)
	if err != nil || last == 0 {
		return nil, last, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT DISTINCT object FROM audit_log
		WHERE seq <= ? AND action LIKE 'certification.%'`), last)
	if err != nil {
		return nil, 0, fmt.Errorf("listing certification changes: %w", err)
	}
	defer rows.Close()
	var ds []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, 0, fmt.Errorf("listing certification changes: %w", err)
		}
		ds = append(ds, d)
	}
	return ds, last, rows.Err()
}
