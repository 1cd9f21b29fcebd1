package vulndb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// The change log makes re-evaluation crash-safe: an import (with
// TrackChanges) appends the ids it inserts or updates to the changes table
// in the same transaction as the records, and a consumer reads the log
// past its cursor, acts, and only then moves its cursor. A consumer killed
// between the two reads the same changes again on restart; what it does
// with them (revoking) must be idempotent.

// Changes is a slice of the change log.
type Changes struct {
	// Seq is the position of the newest change read; pass it to Advance
	// once the changes are handled.
	Seq int64
	// Records are the changed records as now stored, one per id, in the
	// order of their first change; ids changed and then removed are left
	// out.
	Records []*osv.Record
}

// ChangesSince returns the changes past consumer's cursor (all of them for
// a new consumer).
func (db *DB) ChangesSince(ctx context.Context, consumer string) (Changes, error) {
	var from int64
	err := db.sql.QueryRowContext(ctx, `SELECT seq FROM cursors WHERE name = ?`, consumer).Scan(&from)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Changes{}, fmt.Errorf("reading the cursor of %s: %w", consumer, err)
	}
	ch := Changes{Seq: from}
	rows, err := db.sql.QueryContext(ctx, `SELECT c.seq, a.data FROM changes c
		JOIN advisories a ON a.id = c.id WHERE c.seq > ? ORDER BY c.seq`, from)
	if err != nil {
		return Changes{}, fmt.Errorf("reading changes: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var buf []byte
	for rows.Next() {
		var (
			seq  int64
			data sql.RawBytes
		)
		if err := rows.Scan(&seq, &data); err != nil {
			return Changes{}, fmt.Errorf("reading changes: %w", err)
		}
		ch.Seq = max(ch.Seq, seq)
		var r *osv.Record
		r, buf, err = decodeRecord(data, buf)
		if err != nil {
			return Changes{}, fmt.Errorf("reading change %d: %w", seq, err)
		}
		if !seen[r.ID] {
			seen[r.ID] = true
			ch.Records = append(ch.Records, r)
		}
	}
	if err := rows.Err(); err != nil {
		return Changes{}, fmt.Errorf("reading changes: %w", err)
	}
	// Changes whose record was removed since are skipped by the join but
	// still move the cursor.
	var last sql.NullInt64
	if err := db.sql.QueryRowContext(ctx, `SELECT MAX(seq) FROM changes`).Scan(&last); err != nil {
		return Changes{}, fmt.Errorf("reading changes: %w", err)
	}
	if last.Valid {
		ch.Seq = max(ch.Seq, last.Int64)
	}
	return ch, nil
}

// Advance moves consumer's cursor to seq and deletes the changes every
// consumer has read.
func (db *DB) Advance(ctx context.Context, consumer string, seq int64) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("advancing %s: %w", consumer, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO cursors (name, seq) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)`, consumer, seq); err != nil {
		return fmt.Errorf("advancing %s: %w", consumer, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE seq <= (SELECT MIN(seq) FROM cursors)`); err != nil {
		return fmt.Errorf("pruning the change log: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("advancing %s: %w", consumer, err)
	}
	return nil
}
