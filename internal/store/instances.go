package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// teeInstanceSchema holds confidential instances (internal/instance): one
// row per enclave or confidential VM with its attestation status, and the
// single-use nonces the server issued for their evidence.
const teeInstanceSchema = `CREATE TABLE tee_instances (
		id            TEXT PRIMARY KEY,
		workload      TEXT NOT NULL,
		node          TEXT NOT NULL DEFAULT '',
		region        TEXT NOT NULL DEFAULT '',
		region_source TEXT NOT NULL DEFAULT '',
		kind          TEXT NOT NULL,
		image         TEXT NOT NULL DEFAULT '',
		status        TEXT NOT NULL CHECK (status IN ('verified', 'stale', 'failed', 'revoked')),
		reason        TEXT NOT NULL DEFAULT '',
		detail        TEXT NOT NULL DEFAULT '',
		result        TEXT NOT NULL DEFAULT '',
		registered    TEXT NOT NULL,
		verified      TEXT NOT NULL DEFAULT '',
		updated       TEXT NOT NULL
	);
	CREATE INDEX tee_instances_workload ON tee_instances (workload);
	CREATE TABLE tee_challenges (
		nonce    TEXT PRIMARY KEY,
		instance TEXT NOT NULL,
		expires  TEXT NOT NULL
	);`

// TEEInstance is a confidential instance's row. Result is the verified
// evidence's attest.Result as JSON (the store does not interpret it).
type TEEInstance struct {
	ID, Workload, Node, Region, RegionSource string
	Kind, Image, Status, Reason, Detail      string
	Result                                   string
	Registered, Verified, Updated            time.Time
}

// ErrChallenge is returned by TakeChallenge for a nonce that was never
// issued, was used already, has expired or was issued to another instance.
var ErrChallenge = errors.New("unknown, used or expired challenge")

// PutChallenge records a nonce issued to instance, valid until expires.
func (s *Store) PutChallenge(ctx context.Context, nonce, instance string, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO tee_challenges (nonce, instance, expires) VALUES (?, ?, ?)`),
		nonce, instance, formatTime(expires))
	if err != nil {
		return fmt.Errorf("storing challenge for %q: %w", instance, err)
	}
	return nil
}

// TakeChallenge consumes the nonce issued to instance: it succeeds once,
// and only before the nonce expires. Expired nonces are deleted.
func (s *Store) TakeChallenge(ctx context.Context, nonce, instance string) error {
	var expires string
	err := s.db.QueryRowContext(ctx, s.d.q(`DELETE FROM tee_challenges WHERE nonce = ? AND instance = ? RETURNING expires`),
		nonce, instance).Scan(&expires)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrChallenge
	}
	if err != nil {
		return fmt.Errorf("taking challenge of %q: %w", instance, err)
	}
	if !s.now().Before(parseTime(expires)) {
		return fmt.Errorf("challenge expired at %s: %w", expires, ErrChallenge)
	}
	return nil
}

// DeleteExpiredChallenges removes nonces that expired before now.
func (s *Store) DeleteExpiredChallenges(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM tee_challenges WHERE expires < ?`), formatTime(now))
	if err != nil {
		return 0, fmt.Errorf("deleting expired challenges: %w", err)
	}
	return res.RowsAffected()
}

// PutTEEInstances inserts or replaces instances, all in one transaction
// (the caller's, when the store is a view InTx returned).
func (s *Store) PutTEEInstances(ctx context.Context, insts []TEEInstance) error {
	put := func(db dbtx) error {
		q := s.d.q(`INSERT INTO tee_instances (id, workload, node, region, region_source, kind, image, status, reason, detail, result, registered, verified, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET workload = excluded.workload, node = excluded.node, region = excluded.region,
			region_source = excluded.region_source, kind = excluded.kind, image = excluded.image, status = excluded.status,
			reason = excluded.reason, detail = excluded.detail, result = excluded.result, verified = excluded.verified,
			updated = excluded.updated`)
		for _, i := range insts {
			if _, err := db.ExecContext(ctx, q, i.ID, i.Workload, i.Node, i.Region, i.RegionSource, i.Kind, i.Image, i.Status,
				i.Reason, i.Detail, i.Result, formatTime(i.Registered), formatTime(i.Verified), formatTime(i.Updated)); err != nil {
				return fmt.Errorf("storing instance %q: %w", i.ID, err)
			}
		}
		return nil
	}
	if s.txn != nil || len(insts) == 1 {
		return put(s.db)
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return put(tx) })
}

// TEEInstances lists every instance by ID.
func (s *Store) TEEInstances(ctx context.Context) ([]TEEInstance, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, workload, node, region, region_source, kind, image, status, reason, detail, result,
		registered, verified, updated FROM tee_instances ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	defer rows.Close()
	out := []TEEInstance{}
	for rows.Next() {
		var i TEEInstance
		var reg, ver, upd string
		if err := rows.Scan(&i.ID, &i.Workload, &i.Node, &i.Region, &i.RegionSource, &i.Kind, &i.Image, &i.Status,
			&i.Reason, &i.Detail, &i.Result, &reg, &ver, &upd); err != nil {
			return nil, fmt.Errorf("listing instances: %w", err)
		}
		i.Registered, i.Verified, i.Updated = parseTime(reg), parseTime(ver), parseTime(upd)
		out = append(out, i)
	}
	return out, rows.Err()
}

// SetTEEStatus gives the instances ids one status, reason and detail (a
// collateral change revoking thousands, a sweep marking them stale), in
// statements of up to 500 IDs in one transaction.
func (s *Store) SetTEEStatus(ctx context.Context, ids []string, status, reason, detail string) error {
	set := func(db dbtx) error {
		for len(ids) > 0 {
			n := min(len(ids), 500)
			args := []any{status, reason, detail, formatTime(s.now())}
			q := `UPDATE tee_instances SET status = ?, reason = ?, detail = ?, updated = ? WHERE id IN (?` + strings.Repeat(", ?", n-1) + `)`
			for _, id := range ids[:n] {
				args = append(args, id)
			}
			if _, err := db.ExecContext(ctx, s.d.q(q), args...); err != nil {
				return fmt.Errorf("setting %d instances %s: %w", n, status, err)
			}
			ids = ids[n:]
		}
		return nil
	}
	if s.txn != nil {
		return set(s.db)
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return set(tx) })
}

// DeleteTEEInstance removes instance id (retired by an operator);
// ErrNotFound when there is none.
func (s *Store) DeleteTEEInstance(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM tee_instances WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("deleting instance %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("deleting instance %q: %w", id, ErrNotFound)
	}
	return nil
}
