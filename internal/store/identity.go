package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

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
		WHERE seq <= ? AND (action LIKE 'certification.%' OR action = 'instance.image')`), last)
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

// WorkloadFacts is what the identity rule reads of a workload, in one
// statement: its digest's certification, the first drift its node
// reported for the container, and the node's last heartbeat.
type WorkloadFacts struct {
	Certification *Certification // nil: never judged
	Drift         *RuntimeEvent  // nil: none (only ID, Verdict, Path, Time set)
	LastSeen      time.Time      // zero: never
}

// WorkloadFacts reads the facts of container on node running digest.
func (s *Store) WorkloadFacts(ctx context.Context, digest, node, container string) (WorkloadFacts, error) {
	var status, reason, updated, driftVerdict, driftPath, driftTime, lastSeen sql.NullString
	var driftID sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT
		(SELECT status FROM certifications WHERE digest = ?),
		(SELECT reason FROM certifications WHERE digest = ?),
		(SELECT updated FROM certifications WHERE digest = ?),
		d.id, d.verdict, d.path, d.time,
		(SELECT last_seen FROM nodes WHERE name = ?)
		FROM (SELECT 1 AS one) o LEFT JOIN (SELECT id, verdict, path, time FROM runtime_events
			WHERE container = ? AND node = ? ORDER BY id LIMIT 1) d ON 1 = 1`),
		digest, digest, digest, node, container, node).Scan(&status, &reason, &updated, &driftID, &driftVerdict, &driftPath, &driftTime, &lastSeen)
	if err != nil {
		return WorkloadFacts{}, fmt.Errorf("reading the facts of container %q on node %q: %w", container, node, err)
	}
	var f WorkloadFacts
	if status.Valid {
		f.Certification = &Certification{Digest: digest, Status: status.String, Reason: reason.String, Updated: parseTime(updated.String)}
	}
	if driftID.Valid {
		f.Drift = &RuntimeEvent{ID: driftID.Int64, Node: node, Container: container, Verdict: driftVerdict.String, Path: driftPath.String, Time: parseTime(driftTime.String)}
	}
	if lastSeen.Valid {
		f.LastSeen = parseTime(lastSeen.String)
	}
	return f, nil
}

// TokenName is the name an API token was created with.
func (s *Store) TokenName(ctx context.Context, id int64) (string, error) {
	var name string
	if err := s.db.QueryRowContext(ctx, s.d.q(`SELECT name FROM api_tokens WHERE id = ?`), id).Scan(&name); err != nil {
		return "", fmt.Errorf("reading the name of token %d: %w", id, err)
	}
	return name, nil
}
