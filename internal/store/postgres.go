package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// migrateLockKey is the pg_advisory_lock key held while migrating, so that
// replicas starting together migrate one after the other (the second finds
// the schema current). Any constant no other lock of the database uses.
const migrateLockKey int64 = 0x62776b5f6d696772 // "bwk_migr"

// IsPostgresDSN reports whether dsn names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// OpenPostgres opens the store in the PostgreSQL database dsn
// (postgres://user:password@host:port/db?sslmode=...) and migrates its
// schema. Several server replicas may open the same database at once.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	shown := dsn
	if u, err := url.Parse(dsn); err == nil {
		shown = u.Redacted()
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", shown, err)
	}
	s := &Store{path: shown, db: db, sqlDB: db, d: postgresDialect}
	if err := s.migratePostgres(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", shown, err)
	}
	return s, nil
}

// migratePostgres brings the schema to SchemaVersion under a session-level
// advisory lock, one transaction per step. The version is the one row of
// schema_version.
func (s *Store) migratePostgres(ctx context.Context) (err error) {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		// A failed unlock (the connection broke) releases the lock anyway:
		// it dies with the session.
		if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey); uerr != nil && err == nil {
			err = fmt.Errorf("releasing the migration lock: %w", uerr)
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
		version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_version: %w", err)
	}
	var v int
	err = conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		v = 0
	case err != nil:
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this bulwark's (%d)", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		err := func() error {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, s.d.schema(migrations[v])); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (one, version) VALUES (TRUE, $1)
				ON CONFLICT (one) DO UPDATE SET version = excluded.version`, v+1); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

// SchemaVersionOf returns the schema version the database is at.
func (s *Store) SchemaVersionOf(ctx context.Context) (int, error) {
	var v int
	var err error
	if s.d.name == "postgres" {
		err = s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	} else {
		err = s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	}
	return v, err
}
