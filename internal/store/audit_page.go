package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// AuditRecord is one audit log entry as the API lists it: the chain's
// hashes left out (bulwark audit verify checks them).
type AuditRecord struct {
	Seq    int64           `json:"seq"`
	Time   time.Time       `json:"time"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Object string          `json:"object"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// AuditPage lists up to limit audit entries after sequence number after,
// oldest first: the next page starts after the last one's Seq.
func (s *Store) AuditPage(ctx context.Context, after int64, limit int) ([]AuditRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT seq, time, actor, action, object, before, after
		FROM audit_log WHERE seq > ? ORDER BY seq LIMIT `+strconv.Itoa(max(limit, 1))), after)
	if err != nil {
		return nil, fmt.Errorf("listing the audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditRecord{}
	for rows.Next() {
		var (
			r             AuditRecord
			t, before, af string
		)
		if err := rows.Scan(&r.Seq, &t, &r.Actor, &r.Action, &r.Object, &before, &af); err != nil {
			return nil, fmt.Errorf("listing the audit log: %w", err)
		}
		r.Time, _ = time.Parse(time.RFC3339Nano, t)
		if json.Valid([]byte(before)) {
			r.Before = json.RawMessage(before)
		}
		if json.Valid([]byte(af)) {
			r.After = json.RawMessage(af)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the audit log: %w", err)
	}
	return out, nil
}
