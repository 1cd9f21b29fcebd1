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

// Revoke moves digest's certification from certified to revoked with
// reason and appends the certification.revoke audit entry by actor, in
// one transaction. It reports false, and changes nothing, when the digest
// is not certified (already revoked, never certified): revoking twice
// writes one entry.
func (s *Store) Revoke(ctx context.Context, digest, reason, actor string) (bool, error) {
	revoked := false
	_, err := s.Audited(ctx, func(tx *Store) ([]audit.Entry, error) {
		now := tx.now()
		res, err := tx.db.ExecContext(ctx, tx.d.q(`UPDATE certifications SET status = 'revoked', reason = ?, updated = ?
			WHERE digest = ? AND status = 'certified'`), reason, formatTime(now), digest)
		if err != nil {
			return nil, fmt.Errorf("revoking %s: %w", digest, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("revoking %s: %w", digest, err)
		}
		if n == 0 {
			return nil, nil
		}
		revoked = true
		before, _ := json.Marshal(map[string]string{"status": Certified})
		after, _ := json.Marshal(map[string]any{"status": Revoked, "reason": reason, "time": now})
		return []audit.Entry{{Actor: actor, Action: "certification.revoke", Object: digest, Before: before, After: after}}, nil
	})
	return revoked, err
}
