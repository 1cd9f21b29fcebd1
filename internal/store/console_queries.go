package store

import (
	"context"
	"fmt"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// maxHistory bounds ObjectHistory: enough for any one image's
// certification changes, small enough for one page.
const maxHistory = 500

// ObjectHistory returns the audit entries about object (a digest, a
// registry name) whose action starts with actionPrefix ("certification."
// for an image's certifications, grants, denials and revocations; "" for
// all), oldest first, at most the newest 500. It is what the web console
// shows as an image's history.
func (s *Store) ObjectHistory(ctx context.Context, object, actionPrefix string) ([]audit.Entry, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT seq, time, actor, action, object, before, after FROM (
			SELECT seq, time, actor, action, object, before, after FROM audit_log
			WHERE object = ? AND substr(action, 1, ?) = ?
			ORDER BY seq DESC LIMIT `+fmt.Sprint(maxHistory)+`) newest
		ORDER BY seq`), object, len(actionPrefix), actionPrefix)
	if err != nil {
		return nil, fmt.Errorf("reading the history of %q: %w", object, err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var (
			e             audit.Entry
			t             string
			before, after string
		)
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Object, &before, &after); err != nil {
			return nil, fmt.Errorf("reading the history of %q: %w", object, err)
		}
		e.Time = parseTime(t)
		if before != "" {
			e.Before = []byte(before)
		}
		if after != "" {
			e.After = []byte(after)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the history of %q: %w", object, err)
	}
	return out, nil
}
