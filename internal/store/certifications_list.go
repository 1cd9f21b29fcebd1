package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// CertificationListing is a certification with the image's repository and
// the tags pointing at it: one entry of the admission webhook's feed.
type CertificationListing struct {
	Digest     string   `json:"digest"`
	Repository string   `json:"repository"` // "" when the image was never stored
	Tags       []string `json:"tags"`
	Status     string   `json:"status"`
	Reason     string   `json:"reason,omitempty"`
	// Updated is the later of the certification's change and its tags'
	// last move, so a poll misses neither. It is stamped when a write
	// runs, not when it commits: on PostgreSQL a transaction stamped
	// earlier can commit after a poll saw a later entry, and replicas'
	// clocks differ. A poller must ask with since earlier than the newest
	// Updated it saw (the admission webhook asks a minute back) and apply
	// entries idempotently.
	Updated time.Time `json:"updated"`
}

// ListCertifications returns every certification whose status or tags
// changed strictly after since (all when since is zero), oldest change
// first, each with its current state.
func (s *Store) ListCertifications(ctx context.Context, since time.Time) ([]CertificationListing, error) {
	// Times are stored in a fixed-width UTC layout, so text comparison is
	// time order.
	after := ""
	if !since.IsZero() {
		after = formatTime(since)
	}
	return s.listCertifications(ctx, `c.updated > ? OR c.digest IN (SELECT digest FROM tags WHERE updated > ?)`, after, after)
}

// CertificationsOf returns the listings of digests (their current state),
// skipping digests without a certification.
func (s *Store) CertificationsOf(ctx context.Context, digests []string) ([]CertificationListing, error) {
	if len(digests) == 0 {
		return nil, nil
	}
	args := make([]any, len(digests))
	for i, d := range digests {
		args[i] = d
	}
	return s.listCertifications(ctx, `c.digest IN (?`+strings.Repeat(", ?", len(digests)-1)+`)`, args...)
}

// listCertifications lists the certifications where holds (over c, the
// certifications table), oldest change first.
func (s *Store) listCertifications(ctx context.Context, where string, args ...any) ([]CertificationListing, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT c.digest, COALESCE(i.repository, ''), c.status, c.reason, c.updated,
			COALESCE(t.tag, ''), COALESCE(t.repository, ''), COALESCE(t.updated, '')
		FROM certifications c
		LEFT JOIN images i ON i.digest = c.digest
		LEFT JOIN tags t ON t.digest = c.digest
		WHERE `+where+`
		ORDER BY c.digest, t.tag`), args...)
	if err != nil {
		return nil, fmt.Errorf("listing certifications: %w", err)
	}
	defer rows.Close()
	var out []CertificationListing
	for rows.Next() {
		var (
			l                          CertificationListing
			updated, tag, tagRepo, tup string
		)
		if err := rows.Scan(&l.Digest, &l.Repository, &l.Status, &l.Reason, &updated, &tag, &tagRepo, &tup); err != nil {
			return nil, fmt.Errorf("listing certifications: %w", err)
		}
		l.Updated = parseTime(updated)
		if n := len(out); n > 0 && out[n-1].Digest == l.Digest {
			l = out[n-1]
		} else {
			l.Tags = []string{}
			out = append(out, l)
		}
		if l.Repository == "" {
			l.Repository = tagRepo
		}
		// Tags of the image's own repository; a digest pushed to another
		// repository is another image there.
		if tag != "" && tagRepo == l.Repository {
			l.Tags = append(l.Tags, tag)
		}
		if tu := parseTime(tup); tu.After(l.Updated) {
			l.Updated = tu
		}
		out[len(out)-1] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing certifications: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Updated.Before(out[j].Updated) })
	return out, nil
}

// CertificationChanges returns the digests whose certification changed in
// an audit entry after seq (certification.grant, .deny, .set, .revoke,
// and instance.image: the image's confidential instances changed trust),
// and the newest audit sequence number. The audit log's sequence is the
// commit order of its appenders (they are serialised until commit: SQLite's
// write lock, PostgreSQL's audit lock), so a poller that asks after the
// last seq it saw misses no certification change, however late it
// committed, whatever the clocks say. With seq 0 it returns only the
// newest sequence number.
func (s *Store) CertificationChanges(ctx context.Context, seq int64) (digests []string, last int64, err error) {
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_log`).Scan(&last); err != nil {
		return nil, 0, fmt.Errorf("reading the audit sequence: %w", err)
	}
	if seq <= 0 {
		return nil, last, nil // a first poll lists everything anyway
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT DISTINCT object FROM audit_log
		WHERE seq > ? AND seq <= ? AND (action LIKE 'certification.%' OR action = 'instance.image')`), seq, last)
	if err != nil {
		return nil, 0, fmt.Errorf("listing certification changes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, 0, fmt.Errorf("listing certification changes: %w", err)
		}
		digests = append(digests, d)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("listing certification changes: %w", err)
	}
	sort.Strings(digests)
	return digests, last, nil
}
