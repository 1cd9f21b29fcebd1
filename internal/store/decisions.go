package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-sec/bulwark/internal/policy"
)

// PutDecision appends a policy decision about digest. Decisions are kept
// as history; LatestDecision reads the newest.
func (s *Store) PutDecision(ctx context.Context, digest string, d *policy.Decision) error {
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding decision on %s: %w", digest, err)
	}
	t := d.Time
	if t.IsZero() {
		t = s.now()
	}
	pass := 0
	if d.Pass {
		pass = 1
	}
	_, err = s.db.ExecContext(ctx, s.d.q(`INSERT INTO decisions (digest, policy_digest, time, pass, json)
		VALUES (?, ?, ?, ?, ?)`), digest, d.PolicyDigest, formatTime(t), pass, data)
	if err != nil {
		return fmt.Errorf("storing decision on %s: %w", digest, err)
	}
	return nil
}

// LatestDecision returns the newest decision about digest, or ErrNotFound.
func (s *Store) LatestDecision(ctx context.Context, digest string) (*policy.Decision, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT json FROM decisions WHERE digest = ?
		ORDER BY time DESC, id DESC LIMIT 1`), digest).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading decision on %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading decision on %s: %w", digest, err)
	}
	var d policy.Decision
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decoding decision on %s: %w", digest, err)
	}
	return &d, nil
}

// Certification statuses.
const (
	Certified    = "certified"
	Revoked      = "revoked"
	NotCertified = "not_certified"
)

// Certification is the current certification state of a digest.
type Certification struct {
	Digest  string    `json:"digest"`
	Status  string    `json:"status"` // Certified, Revoked or NotCertified
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// SetCertification records digest's certification state, replacing the
// previous one (the audit log keeps the history).
func (s *Store) SetCertification(ctx context.Context, digest, status, reason string) error {
	switch status {
	case Certified, Revoked, NotCertified:
	default:
		return fmt.Errorf("setting certification of %s: unknown status %q", digest, status)
	}
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO certifications (digest, status, reason, updated)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (digest) DO UPDATE SET status = excluded.status, reason = excluded.reason,
			updated = excluded.updated`), digest, status, reason, formatTime(s.now()))
	if err != nil {
		return fmt.Errorf("setting certification of %s: %w", digest, err)
	}
	return nil
}

// Certification returns digest's certification state, or ErrNotFound.
func (s *Store) Certification(ctx context.Context, digest string) (Certification, error) {
	c := Certification{Digest: digest}
	var updated string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT status, reason, updated FROM certifications
		WHERE digest = ?`), digest).Scan(&c.Status, &c.Reason, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Certification{}, fmt.Errorf("reading certification of %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return Certification{}, fmt.Errorf("reading certification of %s: %w", digest, err)
	}
	c.Updated = parseTime(updated)
	return c, nil
}

// RollbackTarget returns the newest digest of repository (by the image
// config's created time, then digest) whose certification is certified,
// or "" when there is none, in one query.
func (s *Store) RollbackTarget(ctx context.Context, repository string) (string, error) {
	var d string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT i.digest FROM images i
		JOIN certifications c ON c.digest = i.digest
		WHERE i.repository = ? AND c.status = ?
		ORDER BY i.created DESC, i.digest LIMIT 1`), repository, Certified).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("finding the rollback target of %s: %w", repository, err)
	}
	return d, nil
}
