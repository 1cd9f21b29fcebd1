package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// vaultSchema holds the secret store's rows (internal/secretstore): a
// secret's metadata (kind, data classes, release policy, current version)
// and its versions, each a ciphertext under its own data key with the data
// key wrapped by a key-encryption key the database never holds.
const vaultSchema = `CREATE TABLE vault_secrets (
		name     TEXT PRIMARY KEY,
		kind     TEXT NOT NULL,
		classes  TEXT NOT NULL DEFAULT '[]',
		policy   TEXT NOT NULL DEFAULT '{}',
		current  BIGINT NOT NULL,
		created  TEXT NOT NULL,
		updated  TEXT NOT NULL
	);
	CREATE TABLE vault_versions (
		name        TEXT NOT NULL REFERENCES vault_secrets (name) ON DELETE CASCADE,
		version     BIGINT NOT NULL,
		kek         TEXT NOT NULL,
		wrapped_key {blob} NOT NULL,
		ciphertext  {blob} NOT NULL,
		created     TEXT NOT NULL,
		PRIMARY KEY (name, version)
	);`

// VaultSecret is a stored secret's metadata: nothing in it is secret.
type VaultSecret struct {
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`    // "kv" or "file"
	Classes string    `json:"classes"` // JSON array of data classes
	Policy  string    `json:"policy"`  // JSON release policy
	Current int64     `json:"current"` // the version released
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// VaultVersion is one sealed version of a secret.
type VaultVersion struct {
	Name       string
	Version    int64
	KEK        string // which key-encryption key wrapped the data key
	WrappedKey []byte
	Ciphertext []byte
	Created    time.Time
}

// ErrVersionConflict is returned by PutVaultVersion when the secret's
// current version is no longer the one the caller read (a concurrent
// rotation won).
var ErrVersionConflict = errors.New("the secret changed meanwhile (concurrent rotation)")

// ErrSecretExists is returned by PutVaultVersion with prev 0 when a
// secret of that name exists (created before, or by a concurrent
// create that committed first). It is an ErrVersionConflict too.
var ErrSecretExists = fmt.Errorf("the secret exists: %w", ErrVersionConflict)

// PutVaultVersion stores v as version prev+1 of meta.Name and makes it
// current, in one transaction: a crash leaves either the old current
// version or the new one, never neither. prev 0 creates the secret (and
// fails if it exists). Metadata fields other than Current are replaced by
// meta's.
func (s *Store) PutVaultVersion(ctx context.Context, meta VaultSecret, prev int64, v VaultVersion) (int64, error) {
	now := s.now()
	next := prev + 1
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if prev == 0 {
			// The primary key decides between concurrent creates, on
			// SQLite and PostgreSQL alike: the loser inserts no row.
			res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO vault_secrets (name, kind, classes, policy, current, created, updated)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`), meta.Name, meta.Kind, meta.Classes, meta.Policy, next, formatTime(now), formatTime(now))
			if err != nil {
				return fmt.Errorf("creating secret %q: %w", meta.Name, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return fmt.Errorf("creating secret %q: %w", meta.Name, ErrSecretExists)
			}
		} else {
			res, err := tx.ExecContext(ctx, s.d.q(`UPDATE vault_secrets SET kind = ?, classes = ?, policy = ?, current = ?, updated = ?
				WHERE name = ? AND current = ?`), meta.Kind, meta.Classes, meta.Policy, next, formatTime(now), meta.Name, prev)
			if err != nil {
				return fmt.Errorf("updating secret %q: %w", meta.Name, err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("rotating secret %q from version %d: %w", meta.Name, prev, ErrVersionConflict)
			}
		}
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO vault_versions (name, version, kek, wrapped_key, ciphertext, created)
			VALUES (?, ?, ?, ?, ?, ?)`), meta.Name, next, v.KEK, v.WrappedKey, v.Ciphertext, formatTime(now))
		if err != nil {
			return fmt.Errorf("storing version %d of secret %q: %w", next, meta.Name, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return next, nil
}

// SetVaultPolicy replaces a secret's classes and release policy.
func (s *Store) SetVaultPolicy(ctx context.Context, name, classes, policy string) error {
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE vault_secrets SET classes = ?, policy = ?, updated = ? WHERE name = ?`),
		classes, policy, formatTime(s.now()), name)
	if err != nil {
		return fmt.Errorf("setting the policy of secret %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("secret %q: %w", name, ErrNotFound)
	}
	return nil
}

// VaultSecrets lists every secret's metadata by name.
func (s *Store) VaultSecrets(ctx context.Context) ([]VaultSecret, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, kind, classes, policy, current, created, updated FROM vault_secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing secrets: %w", err)
	}
	defer rows.Close()
	out := []VaultSecret{}
	for rows.Next() {
		var m VaultSecret
		var created, updated string
		if err := rows.Scan(&m.Name, &m.Kind, &m.Classes, &m.Policy, &m.Current, &created, &updated); err != nil {
			return nil, fmt.Errorf("listing secrets: %w", err)
		}
		m.Created, m.Updated = parseTime(created), parseTime(updated)
		out = append(out, m)
	}
	return out, rows.Err()
}

// VaultSecret returns one secret's metadata.
func (s *Store) VaultSecret(ctx context.Context, name string) (VaultSecret, error) {
	var m VaultSecret
	var created, updated string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT name, kind, classes, policy, current, created, updated FROM vault_secrets WHERE name = ?`), name).
		Scan(&m.Name, &m.Kind, &m.Classes, &m.Policy, &m.Current, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("secret %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("reading secret %q: %w", name, err)
	}
	m.Created, m.Updated = parseTime(created), parseTime(updated)
	return m, nil
}

// VaultVersion returns version (0: the current one) of a secret.
func (s *Store) VaultVersion(ctx context.Context, name string, version int64) (VaultVersion, error) {
	v := VaultVersion{Name: name}
	var created string
	q := `SELECT v.version, v.kek, v.wrapped_key, v.ciphertext, v.created FROM vault_versions v
		JOIN vault_secrets s ON s.name = v.name WHERE v.name = ? AND v.version = `
	args := []any{name}
	if version == 0 {
		q += `s.current`
	} else {
		q += `?`
		args = append(args, version)
	}
	err := s.db.QueryRowContext(ctx, s.d.q(q), args...).Scan(&v.Version, &v.KEK, &v.WrappedKey, &v.Ciphertext, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("secret %q version %d: %w", name, version, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("reading secret %q: %w", name, err)
	}
	v.Created = parseTime(created)
	return v, nil
}
