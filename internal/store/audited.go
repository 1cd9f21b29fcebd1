package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// Audited runs fn in one transaction with a view of the store (InTx) and
// appends the audit entries fn returns in that same transaction: the
// change and its record commit together or not at all. It returns the
// entries as appended (with sequence numbers and hashes), for the caller
// to anchor.
func (s *Store) Audited(ctx context.Context, fn func(tx *Store) ([]audit.Entry, error)) ([]audit.Entry, error) {
	var appended []audit.Entry
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		appended = appended[:0]
		entries, err := fn(s.InTx(tx))
		if err != nil {
			return err
		}
		for _, e := range entries {
			got, err := audit.Append(ctx, tx, e)
			if err != nil {
				return fmt.Errorf("auditing %s of %s: %w", e.Action, e.Object, err)
			}
			appended = append(appended, got)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return appended, nil
}

// JobCertificationEvent is the kind of the outbox job a certification
// change writes in its own transaction: the server's event task turns it
// into notifications (with the rollback target), so a change committed is
// always published, even across a crash (at least once).
const JobCertificationEvent = "certification-event"

// CertificationEvent is the payload of a JobCertificationEvent job.
type CertificationEvent struct {
	Digest string    `json:"digest"`
	Status string    `json:"status"` // Certified or Revoked
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// EnqueueCertificationEvent writes the outbox job of a certification
// change; call it on a view InTx returned, in the change's transaction.
func (s *Store) EnqueueCertificationEvent(ctx context.Context, ev CertificationEvent) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = s.EnqueueJob(ctx, JobCertificationEvent, payload, time.Time{})
	return err
}

// Revocation is one digest to revoke and why.
type Revocation struct {
	Digest string
	Reason string
}

// Revoke moves digest's certification from certified to revoked with
// reason and appends the certification.revoke audit entry by actor, in
// one transaction. It reports false, and changes nothing, when the digest
// is not certified (already revoked, never certified): revoking twice
// writes one entry.
func (s *Store) Revoke(ctx context.Context, digest, reason, actor string) (bool, error) {
	done, err := s.RevokeBatch(ctx, []Revocation{{digest, reason}}, actor)
	return len(done) == 1, err
}

// RevokeBatch is Revoke for several digests in one transaction (each
// revocation commits with its audit entry and its outbox event, all or
// none); it
// returns those that were certified and are now revoked, in order. One
// transaction per batch instead of per digest is what keeps re-evaluation
// under a second for thousands of revocations (bench/reeval).
func (s *Store) RevokeBatch(ctx context.Context, batch []Revocation, actor string) ([]Revocation, error) {
	var done []Revocation
	_, err := s.Audited(ctx, func(tx *Store) ([]audit.Entry, error) {
		done = done[:0]
		now := tx.now()
		var entries []audit.Entry
		for _, r := range batch {
			res, err := tx.db.ExecContext(ctx, tx.d.q(`UPDATE certifications SET status = 'revoked', reason = ?, updated = ?
				WHERE digest = ? AND status = 'certified'`), r.Reason, formatTime(now), r.Digest)
			if err != nil {
				return nil, fmt.Errorf("revoking %s: %w", r.Digest, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return nil, fmt.Errorf("revoking %s: %w", r.Digest, err)
			}
			if n == 0 {
				continue
			}
			done = append(done, r)
			if err := tx.EnqueueCertificationEvent(ctx, CertificationEvent{Digest: r.Digest, Status: Revoked, Reason: r.Reason, Time: now}); err != nil {
				return nil, err
			}
			before, _ := json.Marshal(map[string]string{"status": Certified})
			after, _ := json.Marshal(map[string]any{"status": Revoked, "reason": r.Reason, "time": now})
			entries = append(entries, audit.Entry{Actor: actor, Action: "certification.revoke", Object: r.Digest, Before: before, After: after})
		}
		return entries, nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}
