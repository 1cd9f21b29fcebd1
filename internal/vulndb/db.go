package vulndb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// DefaultMaxArchiveSize caps the bytes an import reads out of one zip (the
// sum of its members, uncompressed) or one download: a generous bound that
// stops a decompression bomb; a genuine export past it needs
// --max-archive-size.
const DefaultMaxArchiveSize int64 = 8 << 30

// pageSize is the SQLite page size of new databases. Records are a few
// hundred bytes compressed; 4 KiB pages waste the least (docs/vulndb.md).
const pageSize = 4096

// DB is an open advisory database. Its exported fields configure imports;
// set them before use, not while an import runs.
type DB struct {
	// HTTPClient fetches URL sources; nil means http.DefaultClient.
	HTTPClient *http.Client
	// MaxArchiveSize caps one zip's uncompressed members added up, and one
	// download; 0 means DefaultMaxArchiveSize.
	MaxArchiveSize int64
	// Progress, when not nil, receives a line per download and every
	// 10,000 records read.
	Progress io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TrackChanges makes imports append the ids of the records they
	// insert or update to the change log, in the import's transaction, for
	// a consumer (the server's re-evaluation) to read with ChangesSince.
	TrackChanges bool

	path   string
	sql    *sql.DB
	lookup *sql.Stmt
}

// DefaultPath is $XDG_CACHE_HOME/bulwark/vulndb/osv.db (os.UserCacheDir).
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the user cache directory: %w", err)
	}
	return filepath.Join(dir, "bulwark", "vulndb", "osv.db"), nil
}

// dsn is the connection string for path. The page size is set before WAL
// mode (the driver runs _pragma entries first), because switching a new
// database to WAL fixes its page size. WAL lets readers keep answering while
// an import writes; transactions begin IMMEDIATE so two imports queue on the
// busy timeout instead of failing half way.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("page_size(%d)", pageSize))
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens the database at path, creating it (0644, directory 0755) and
// migrating its schema as needed.
func Open(path string) (*DB, error) {
	if err := createFile(path); err != nil {
		return nil, err
	}
	sdb, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db := &DB{path: path, sql: sdb}
	if err := db.migrate(context.Background()); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.lookup, err = sdb.Prepare(`SELECT a.data FROM affected f JOIN advisories a ON a.id = f.id
		WHERE f.ecosystem = ? AND f.name = ? AND a.withdrawn = 0 ORDER BY a.id`)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("opening %s: preparing lookup: %w", path, err)
	}
	return db, nil
}

// createFile creates path's directory (0755) and an empty database file
// (0644) when they do not exist, whatever the umask.
func createFile(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating database directory: %w", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("creating database directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	f.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Close closes the database. SQLite checkpoints and removes the WAL when
// the last connection closes.
func (db *DB) Close() error {
	if db.lookup != nil {
		db.lookup.Close()
	}
	return db.sql.Close()
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now().UTC()
	}
	return time.Now().UTC()
}

// SchemaVersion is the PRAGMA user_version of a current database: the
// number of migrations.
const SchemaVersion = 2

// migrations[i] takes a database from user_version i to i+1.
var migrations = []string{
	// 1: advisories, the package index and the sources. affected is a
	// WITHOUT ROWID table whose primary key (ecosystem, name, id) is the
	// (ecosystem, name) index: one b-tree instead of a table plus an index.
	`CREATE TABLE advisories (
		id        TEXT PRIMARY KEY,
		modified  TEXT NOT NULL,
		source    TEXT NOT NULL,
		withdrawn INTEGER NOT NULL DEFAULT 0,
		data      BLOB NOT NULL
	);
	CREATE TABLE affected (
		ecosystem TEXT NOT NULL,
		name      TEXT NOT NULL,
		id        TEXT NOT NULL,
		PRIMARY KEY (ecosystem, name, id)
	) WITHOUT ROWID;
	CREATE TABLE sources (
		name    TEXT PRIMARY KEY,
		url     TEXT NOT NULL,
		updated TEXT NOT NULL,
		records INTEGER NOT NULL,
		skipped INTEGER NOT NULL,
		etag    TEXT NOT NULL DEFAULT ''
	);`,
	// 2: the change log (ids of records inserted or updated, in commit
	// order) and the position of each consumer in it; see changes.go.
	`CREATE TABLE changes (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id  TEXT NOT NULL
	);
	CREATE TABLE cursors (
		name TEXT PRIMARY KEY,
		seq  INTEGER NOT NULL
	);`,
}

// migrate brings the schema to SchemaVersion, one transaction per step.
func (db *DB) migrate(ctx context.Context) error {
	var v int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this bulwark's (%d)", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		tx, err := db.sql.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

// Lookup returns the records, withdrawn ones excluded, that name the
// package (ecosystem, name) in their affected list, ordered by id. The
// ecosystem and name are those of an osv.Query ("Debian:12", "Go",
// "Ubuntu:22.04"); see indexKey for how they are normalised.
func (db *DB) Lookup(ctx context.Context, ecosystem, name string) ([]*osv.Record, error) {
	k := indexKey(ecosystem, name)
	rows, err := db.lookup.QueryContext(ctx, k.ecosystem, k.name)
	if err != nil {
		return nil, fmt.Errorf("looking up %s/%s: %w", ecosystem, name, err)
	}
	defer rows.Close()
	var (
		out  []*osv.Record
		data sql.RawBytes
		buf  []byte
	)
	for rows.Next() {
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("looking up %s/%s: %w", ecosystem, name, err)
		}
		var r *osv.Record
		r, buf, err = decodeRecord(data, buf)
		if err != nil {
			return nil, fmt.Errorf("looking up %s/%s: %w", ecosystem, name, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up %s/%s: %w", ecosystem, name, err)
	}
	return out, nil
}

// Status describes the database.
type Status struct {
	Path          string         `json:"path"`
	SchemaVersion int            `json:"schemaVersion"`
	Size          int64          `json:"size"`      // bytes on disk, WAL included
	Records       int            `json:"records"`   // advisories stored, withdrawn ones included
	Withdrawn     int            `json:"withdrawn"` // of which withdrawn
	Packages      int            `json:"packages"`  // distinct (ecosystem, package) pairs
	Updated       time.Time      `json:"updated"`   // the newest source update; zero when empty
	Age           time.Duration  `json:"-"`         // since Updated
	Sources       []SourceStatus `json:"sources"`
}

// SourceStatus is one source's last import.
type SourceStatus struct {
	Name    string    `json:"name"`
	URL     string    `json:"url"`
	Updated time.Time `json:"updated"` // last import or not-modified check
	Records int       `json:"records"` // advisories this source wrote
	Skipped int       `json:"skipped"` // malformed records in its last import
}

// Status reports the sources, record counts, size and age.
func (db *DB) Status(ctx context.Context) (Status, error) {
	st := Status{Path: db.path, SchemaVersion: SchemaVersion}
	err := db.sql.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM advisories),
		(SELECT COUNT(*) FROM advisories WHERE withdrawn != 0),
		(SELECT COUNT(*) FROM (SELECT DISTINCT ecosystem, name FROM affected))`).
		Scan(&st.Records, &st.Withdrawn, &st.Packages)
	if err != nil {
		return Status{}, fmt.Errorf("reading database status: %w", err)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT name, url, updated, records, skipped FROM sources ORDER BY name`)
	if err != nil {
		return Status{}, fmt.Errorf("reading sources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s       SourceStatus
			updated string
		)
		if err := rows.Scan(&s.Name, &s.URL, &updated, &s.Records, &s.Skipped); err != nil {
			return Status{}, fmt.Errorf("reading sources: %w", err)
		}
		s.Updated, _ = time.Parse(time.RFC3339Nano, updated)
		if s.Updated.After(st.Updated) {
			st.Updated = s.Updated
		}
		st.Sources = append(st.Sources, s)
	}
	if err := rows.Err(); err != nil {
		return Status{}, fmt.Errorf("reading sources: %w", err)
	}
	if !st.Updated.IsZero() {
		st.Age = db.now().Sub(st.Updated)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(db.path + suffix); err == nil {
			st.Size += fi.Size()
		} else if !errors.Is(err, os.ErrNotExist) {
			return Status{}, fmt.Errorf("reading database size: %w", err)
		}
	}
	return st, nil
}

// checkpoint folds the WAL back into the database file and truncates it,
// so the file on disk is the whole database. Best effort: a reader holding
// an old snapshot makes it a partial checkpoint, which is fine.
func (db *DB) checkpoint(ctx context.Context) {
	db.sql.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
}
