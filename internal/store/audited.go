package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

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
// revocation still commits with its own audit entry, all or none); it
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
