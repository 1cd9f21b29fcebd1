package audittest

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver of SQLite

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// Rewrite reads every entry of the audit log in db, lets edit change or
// drop (return false) each one, deletes the log and appends what is left
// again with audit.Append, which renumbers the entries from 1 and
// recomputes every prev_hash and hash: the edited, shortened history is a
// valid chain. It returns the last entry appended (zero when none), for an
// attacker who also rewrites the anchor.
func Rewrite(t testing.TB, db *sql.DB, edit func(e *audit.Entry) (keep bool)) audit.Entry {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, `SELECT time, actor, action, object, before, after FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var entries []audit.Entry
	for rows.Next() {
		var (
			e                 audit.Entry
			ts, before, after string
		)
		if err := rows.Scan(&ts, &e.Actor, &e.Action, &e.Object, &before, &after); err != nil {
			t.Fatal(err)
		}
		if e.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatal(err)
		}
		if before != "" {
			e.Before = []byte(before)
		}
		if after != "" {
			e.After = []byte(after)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	var last audit.Entry
	for _, e := range entries {
		if !edit(&e) {
			continue
		}
		if last, err = audit.Append(ctx, tx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return last
}

// SQLite opens a SQLite database in t.TempDir() holding the audit table,
// closed when the test ends.
func SQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "audit.db")+"?_txlock=immediate&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(audit.Schema("BLOB")); err != nil {
		t.Fatal(err)
	}
	return db
}
