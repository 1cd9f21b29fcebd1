package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// ErrNotFound is returned when the asked-for row does not exist.
var ErrNotFound = errors.New("not found")

// Store is the control plane's database: one SQLite file (Open) or a
// PostgreSQL database shared by several server replicas (OpenPostgres). The
// methods and their semantics are the same on both; what differs is in the
// dialect. Its exported fields configure it; set them before use.
type Store struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxAttempts is how many times a job runs before FailJob marks it
	// failed for good; 0 means DefaultMaxAttempts.
	MaxAttempts int

	path  string // the SQLite file, or the PostgreSQL DSN without password
	db    dbtx   // sqlDB, or txn in a view InTx returned
	sqlDB *sql.DB
	txn   *sql.Tx // set in a view InTx returned
	d     dialect
}

// dbtx is what the store's queries run on: the database or a transaction.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// InTx returns a view of the store whose methods run inside tx (a
// transaction Tx opened), so that several changes and their audit entries
// commit or roll back together. The view is valid only until fn returns.
func (s *Store) InTx(tx *sql.Tx) *Store {
	v := *s
	v.db, v.txn = tx, tx
	return &v
}

// SQLite is the name the store had when SQLite was its only backend.
type SQLite = Store

// dsn is the connection string for path: WAL so readers never wait for the
// writer, foreign keys on, a busy timeout so concurrent writers queue
// instead of failing, and transactions that begin IMMEDIATE (take the write
// lock at BEGIN) so a read-then-write transaction cannot deadlock with
// another one upgrading its lock.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens the store at path, creating the file (0600: it holds token
// hashes and registry credentials) and its directory (0700) when missing,
// and migrates the schema.
//
// A path starting with postgres:// or postgresql:// is a PostgreSQL DSN:
// Open then is OpenPostgres.
func Open(ctx context.Context, path string) (*Store, error) {
	if IsPostgresDSN(path) {
		return OpenPostgres(ctx, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	f.Close()
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// Keep connections open between bursts: database/sql keeps 2 idle by
	// default, and opening a SQLite connection reads the schema again
	// (measured: 4% of an identity issuance's CPU under 16 callers).
	db.SetMaxIdleConns(16)
	s := &Store{path: path, db: db, sqlDB: db, d: sqliteDialect}
	if err := s.migrateSQLite(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.sqlDB.Close() }

// Path is the database file (SQLite) or the DSN with any password removed
// (PostgreSQL).
func (s *Store) Path() string { return s.path }

// DB is the underlying database, for audit.Verify and read-only tools.
func (s *Store) DB() *sql.DB { return s.sqlDB }

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// Tx runs fn in one transaction, committed when fn returns nil and rolled
// back otherwise. A mutation and its audit.Append go in the same Tx.
//
// Tx transactions are serialised: on SQLite by the write lock taken at BEGIN
// (_txlock=immediate), on PostgreSQL by audit.Lock, a transaction-scoped
// advisory lock taken first, across every replica. That is what keeps the
// audit chain linear: the next Append reads the last entry only after the
// previous appender committed.
func (s *Store) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.txn != nil {
		return fn(s.txn)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.name == "postgres" {
			if err := audit.Lock(ctx, tx); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// tx is Tx without the audit lock, for the store's own transactions that
// write no audit entry.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.txn != nil { // a view InTx returned: already in a transaction
		return fn(s.txn)
	}
	tx, err := s.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// timeLayout is how times are stored: UTC with a fixed nine-digit fraction,
// so that text order is time order (run_after, decision time) in both
// SQLite and PostgreSQL.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		t, _ = time.Parse(time.RFC3339Nano, s)
	}
	return t
}

// SchemaVersion is the version of a current database schema (SQLite's
// PRAGMA user_version, PostgreSQL's schema_version table): the number of
// migrations.
var SchemaVersion = len(migrations)

// migrations[i] takes a database from user_version i to i+1. {id} and
// {blob} are filled by the dialect.
var migrations = []string{
	// 1: the control plane's tables.
	`CREATE TABLE registries (
		id          {id},
		name        TEXT NOT NULL UNIQUE,
		url         TEXT NOT NULL,
		credentials {blob},
		created     TEXT NOT NULL
	);
	CREATE TABLE repositories (
		registry_id BIGINT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
		name        TEXT NOT NULL,
		PRIMARY KEY (registry_id, name)
	);
	CREATE TABLE images (
		digest        TEXT PRIMARY KEY,
		repository    TEXT NOT NULL,
		config_digest TEXT NOT NULL DEFAULT '',
		created       TEXT NOT NULL DEFAULT '',
		first_seen    TEXT NOT NULL,
		last_seen     TEXT NOT NULL,
		size          BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX images_repository ON images (repository, created);
	CREATE TABLE tags (
		repository TEXT NOT NULL,
		tag        TEXT NOT NULL,
		digest     TEXT NOT NULL,
		updated    TEXT NOT NULL,
		PRIMARY KEY (repository, tag)
	);
	CREATE INDEX tags_digest ON tags (digest);
	CREATE TABLE inventories (
		digest TEXT PRIMARY KEY,
		sbom   {blob} NOT NULL,
		stored TEXT NOT NULL
	);
	CREATE TABLE packages (
		ecosystem TEXT NOT NULL,
		name      TEXT NOT NULL,
		digest    TEXT NOT NULL REFERENCES inventories(digest) ON DELETE CASCADE,
		version   TEXT NOT NULL,
		PRIMARY KEY (ecosystem, name, digest, version)
	);
	CREATE INDEX packages_digest ON packages (digest);
	CREATE TABLE decisions (
		id            {id},
		digest        TEXT NOT NULL,
		policy_digest TEXT NOT NULL,
		time          TEXT NOT NULL,
		pass          INTEGER NOT NULL,
		json          {blob} NOT NULL
	);
	CREATE INDEX decisions_digest ON decisions (digest, time);
	CREATE TABLE certifications (
		digest  TEXT PRIMARY KEY,
		status  TEXT NOT NULL CHECK (status IN ('certified', 'revoked', 'not_certified')),
		reason  TEXT NOT NULL DEFAULT '',
		updated TEXT NOT NULL
	);
	CREATE TABLE jobs (
		id         {id},
		kind       TEXT NOT NULL,
		payload    {blob},
		state      TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
		run_after  TEXT NOT NULL,
		attempts   INTEGER NOT NULL DEFAULT 0,
		claimed_by TEXT NOT NULL DEFAULT '',
		claimed_at TEXT NOT NULL DEFAULT '',
		error      TEXT NOT NULL DEFAULT '',
		created    TEXT NOT NULL
	);
	CREATE INDEX jobs_queue ON jobs (state, run_after);
	CREATE TABLE api_tokens (
		id        {id},
		name      TEXT NOT NULL,
		role      TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
		hash      {blob} NOT NULL UNIQUE,
		created   TEXT NOT NULL,
		last_used TEXT NOT NULL DEFAULT '',
		revoked   TEXT NOT NULL DEFAULT ''
	);` + audit.Schema("{blob}"),

	// 2: what the server's scans learn about an image (its config for the
	// policy, base image, last scan, findings by severity), applications
	// with owners and lifecycles, and notification webhooks.
	`ALTER TABLE images ADD COLUMN config {blob};
	ALTER TABLE images ADD COLUMN base_image TEXT NOT NULL DEFAULT '';
	ALTER TABLE images ADD COLUMN last_scanned TEXT NOT NULL DEFAULT '';
	ALTER TABLE images ADD COLUMN findings TEXT NOT NULL DEFAULT '';
	CREATE TABLE applications (
		id           {id},
		name         TEXT NOT NULL UNIQUE,
		team         TEXT NOT NULL DEFAULT '',
		contact      TEXT NOT NULL DEFAULT '',
		lifecycle    TEXT NOT NULL DEFAULT 'active' CHECK (lifecycle IN ('active', 'deprecated', 'end-of-life')),
		repositories TEXT NOT NULL DEFAULT '',
		labels       TEXT NOT NULL DEFAULT '',
		created      TEXT NOT NULL,
		updated      TEXT NOT NULL
	);
	CREATE TABLE webhooks (
		id      {id},
		name    TEXT NOT NULL UNIQUE,
		url     TEXT NOT NULL,
		kind    TEXT NOT NULL CHECK (kind IN ('generic', 'slack')),
		secret  {blob},
		events  TEXT NOT NULL DEFAULT '',
		created TEXT NOT NULL
	);`,

	// 3: at most one pending (queued or running) scan or poll job per
	// payload, so that EnqueueJobOnce is atomic across replicas.
	// Duplicates an older version queued are failed first.
	`UPDATE jobs SET state = 'failed', error = 'duplicate of an earlier pending job'
		WHERE state IN ('queued', 'running') AND kind IN ('scan', 'poll') AND id NOT IN (
			SELECT MIN(id) FROM jobs WHERE state IN ('queued', 'running') AND kind IN ('scan', 'poll') GROUP BY kind, payload);
	CREATE UNIQUE INDEX jobs_pending ON jobs (kind, payload) WHERE state IN ('queued', 'running') AND kind IN ('scan', 'poll');`,

	// 4: re-evaluation jobs are deduplicated too (one per advisory change
	// set across replicas).
	`DROP INDEX jobs_pending;
	CREATE UNIQUE INDEX jobs_pending ON jobs (kind, payload) WHERE state IN ('queued', 'running') AND kind IN ('scan', 'poll', 'reevaluate');`,

	// 5: a poll job's slot is queued once for all time, not only once
	// while pending: a replica whose look ran before another's poll of the
	// slot finished cannot queue it again. Repeated slots an older version
	// queued are deleted first (a poll job's only trace is the row).
	`DELETE FROM jobs WHERE kind = 'poll' AND id NOT IN (SELECT MIN(id) FROM jobs WHERE kind = 'poll' GROUP BY payload);
	DROP INDEX jobs_pending;
	CREATE UNIQUE INDEX jobs_pending ON jobs (kind, payload) WHERE ` + onceJobs + `;
	CREATE UNIQUE INDEX jobs_slot ON jobs (kind, payload) WHERE ` + slotJobs + `;`,

	// 6: signatures, attestations and SBOMs found in the registries,
	// attached to the image they are about (attachments.go).
	`CREATE TABLE attachments (
		repository     TEXT NOT NULL,
		source         TEXT NOT NULL,
		artifact       TEXT NOT NULL,
		layer          TEXT NOT NULL DEFAULT '',
		subject        TEXT NOT NULL,
		kind           TEXT NOT NULL,
		media_type     TEXT NOT NULL DEFAULT '',
		predicate_type TEXT NOT NULL DEFAULT '',
		key_id         TEXT NOT NULL DEFAULT '',
		identity       TEXT NOT NULL DEFAULT '',
		verified       INTEGER NOT NULL DEFAULT 0,
		seen           TEXT NOT NULL
	);
	CREATE INDEX attachments_subject ON attachments (subject);
	CREATE INDEX attachments_source ON attachments (repository, source);`,

	// 7: an object's audit entries newest first (ObjectHistory, the
	// console's certification history) without reading the whole log.
	`CREATE INDEX IF NOT EXISTS audit_log_object ON audit_log (object, seq);`,

	// 8: runtime events and nodes reported by bulwark-agent (runtime.go).
	runtimeSchema,

	// 9: the secret store's secrets and sealed versions (vault.go).
	vaultSchema,

	// 10: applications' registered APIs and the fuzz campaigns run
	// against them (fuzzcampaigns.go).
	fuzzSchema,

	// 11: confidential instances and their challenges (instances.go).
	teeInstanceSchema,

	// 12: observed data flows and governance alerts (governance.go).
	governanceSchema,

	// 13: runtime responses, recorded before they are taken (responses.go).
	responsesSchema,

	// 14: one queued or running fuzz campaign per application
	// (fuzzcampaigns.go).
	fuzzActiveSchema,

	// 15: the process tree of a runtime event (responses.go).
	runtimeTreeSchema,

	// 16: the allowlist file table of a scanned digest (filetable.go).
	fileTableSchema,

	// 17: the web console's sessions (consolesessions.go).
	consoleSessionsSchema,
}

// migrateSQLite brings the schema to SchemaVersion, one transaction per
// step.
func (s *Store) migrateSQLite(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this bulwark's (%d)", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, s.d.schema(migrations[v])); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
		}
	}
	return nil
}
