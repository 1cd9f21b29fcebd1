package audit

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/bulwark-sec/bulwark/internal/pgtest"
)

// backend is a database the audit log is tested on.
type backend struct {
	// open returns a fresh database with the audit table.
	open func(t *testing.T) *sql.DB
	// begin starts a transaction that may Append, serialised with the
	// other appenders.
	begin func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
}

var backends = map[string]backend{
	"sqlite": {
		open: func(t *testing.T) *sql.DB {
			return openWithSchema(t, "sqlite", "file:"+filepath.Join(t.TempDir(), "audit.db")+"?_txlock=immediate&_pragma=busy_timeout(10000)", "BLOB")
		},
		begin: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) { return db.BeginTx(ctx, nil) },
	},
	"postgres": {
		open: func(t *testing.T) *sql.DB { return openWithSchema(t, "pgx", pgtest.Start(t), "BYTEA") },
		begin: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return nil, err
			}
			if err := Lock(ctx, tx); err != nil {
				tx.Rollback()
				return nil, err
			}
			return tx, nil
		},
	},
}

func openWithSchema(t *testing.T, driver, dsn, blob string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(Schema(blob)); err != nil {
		t.Fatal(err)
	}
	return db
}

// eachBackend runs test on SQLite and on PostgreSQL (skipped when
// PostgreSQL is not installed, unless BULWARK_REQUIRE_POSTGRES=1).
func eachBackend(t *testing.T, test func(*testing.T, backend)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { test(t, backends[name]) })
	}
}
