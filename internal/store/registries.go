package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Registry is a watched registry. Credentials is ciphertext: the caller
// encrypts it with the server's key before PutRegistry and decrypts it
// after Registry. The store never sees the key or the plaintext.
type Registry struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	URL         string    `json:"url"`
	Credentials []byte    `json:"-"`
	Created     time.Time `json:"created"`
}

// PutRegistry adds the registry named r.Name or updates its URL and
// credentials, and returns its id.
func (s *Store) PutRegistry(ctx context.Context, r Registry) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO registries (name, url, credentials, created)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET url = excluded.url, credentials = excluded.credentials
		RETURNING id`), r.Name, r.URL, r.Credentials, formatTime(s.now())).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("storing registry %q: %w", r.Name, err)
	}
	return id, nil
}

// Registry returns the registry called name, or ErrNotFound.
func (s *Store) Registry(ctx context.Context, name string) (Registry, error) {
	r := Registry{Name: name}
	var created string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT id, url, credentials, created FROM registries
		WHERE name = ?`), name).Scan(&r.ID, &r.URL, &r.Credentials, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Registry{}, fmt.Errorf("reading registry %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Registry{}, fmt.Errorf("reading registry %q: %w", name, err)
	}
	r.Created = parseTime(created)
	return r, nil
}

// AddRepository records a repository of the registry registryID; adding a
// known one does nothing.
func (s *Store) AddRepository(ctx context.Context, registryID int64, name string) error {
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO repositories (registry_id, name) VALUES (?, ?)
		ON CONFLICT (registry_id, name) DO NOTHING`), registryID, name)
	if err != nil {
		return fmt.Errorf("adding repository %q: %w", name, err)
	}
	return nil
}

// Repositories returns the repositories of the registry registryID, by name.
func (s *Store) Repositories(ctx context.Context, registryID int64) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT name FROM repositories WHERE registry_id = ? ORDER BY name`), registryID)
	if err != nil {
		return nil, fmt.Errorf("listing repositories: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("listing repositories: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing repositories: %w", err)
	}
	return out, nil
}

// ListRegistries returns every registry, by name. Credentials are included
// (ciphertext), as for Registry.
func (s *Store) ListRegistries(ctx context.Context) ([]Registry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, url, credentials, created FROM registries ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing registries: %w", err)
	}
	defer rows.Close()
	var out []Registry
	for rows.Next() {
		var (
			r       Registry
			created string
		)
		if err := rows.Scan(&r.ID, &r.Name, &r.URL, &r.Credentials, &created); err != nil {
			return nil, fmt.Errorf("listing registries: %w", err)
		}
		r.Created = parseTime(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing registries: %w", err)
	}
	return out, nil
}
