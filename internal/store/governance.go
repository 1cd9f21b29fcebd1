package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// governanceSchema holds observed data flows (internal/governance): one
// row per (node, container, destination) with the service and region the
// server resolved, a count and first/last times; and the governance
// alerts raised, one per violation key, so a violation is notified once
// across restarts and replicas.
const governanceSchema = `CREATE TABLE data_flows (
		node        TEXT NOT NULL,
		container   TEXT NOT NULL,
		destination TEXT NOT NULL,
		image       TEXT NOT NULL DEFAULT '',
		service     TEXT NOT NULL DEFAULT '',
		region      TEXT NOT NULL DEFAULT '',
		count       BIGINT NOT NULL,
		first       TEXT NOT NULL,
		last        TEXT NOT NULL,
		PRIMARY KEY (node, container, destination)
	);
	CREATE TABLE governance_alerts (
		key   TEXT PRIMARY KEY,
		first TEXT NOT NULL
	);`

// DataFlow is a stored flow.
type DataFlow struct {
	Node, Container, Destination string
	Image, Service, Region       string
	Count                        int64
	First, Last                  time.Time
}

// AddDataFlows adds fs to the stored flows: a new (node, container,
// destination) is inserted, a known one counts up and moves its last time.
func (s *Store) AddDataFlows(ctx context.Context, fs []DataFlow) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, f := range fs {
			_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO data_flows
				(node, container, destination, image, service, region, count, first, last) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (node, container, destination) DO UPDATE SET count = data_flows.count + excluded.count,
					image = excluded.image, service = excluded.service, region = excluded.region,
					last = CASE WHEN excluded.last > data_flows.last THEN excluded.last ELSE data_flows.last END`),
				f.Node, f.Container, f.Destination, f.Image, f.Service, f.Region, f.Count, formatTime(f.First), formatTime(f.Last))
			if err != nil {
				return fmt.Errorf("storing the flow %s/%s -> %s: %w", f.Node, f.Container, f.Destination, err)
			}
		}
		return nil
	})
}

// DataFlows lists every stored flow.
func (s *Store) DataFlows(ctx context.Context) ([]DataFlow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT node, container, destination, image, service, region, count, first, last
		FROM data_flows ORDER BY node, container, destination`)
	if err != nil {
		return nil, fmt.Errorf("listing data flows: %w", err)
	}
	defer rows.Close()
	out := []DataFlow{}
	for rows.Next() {
		var f DataFlow
		var first, last string
		if err := rows.Scan(&f.Node, &f.Container, &f.Destination, &f.Image, &f.Service, &f.Region, &f.Count, &first, &last); err != nil {
			return nil, fmt.Errorf("listing data flows: %w", err)
		}
		f.First, f.Last = parseTime(first), parseTime(last)
		out = append(out, f)
	}
	return out, rows.Err()
}

// NewGovernanceAlert records key and reports whether it is new (the first
// time this violation is seen).
func (s *Store) NewGovernanceAlert(ctx context.Context, key string) (bool, error) {
	var k string
	err := s.db.QueryRowContext(ctx, s.d.q(`INSERT INTO governance_alerts (key, first) VALUES (?, ?)
		ON CONFLICT (key) DO NOTHING RETURNING key`), key, formatTime(s.now())).Scan(&k)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recording a governance alert: %w", err)
	}
	return true, nil
}

// Drift is a container's drift as runtime events recorded it.
type Drift struct {
	ID              int64
	Node, Container string
	Time            time.Time
}

// DriftSince lists up to limit runtime events after id after, oldest
// first: a reader keeps the last id and asks again for what is new.
func (s *Store) DriftSince(ctx context.Context, after int64, limit int) ([]Drift, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, node, container, time FROM runtime_events WHERE id > ?
		ORDER BY id LIMIT `+strconv.Itoa(max(limit, 1))), after)
	if err != nil {
		return nil, fmt.Errorf("reading drift events: %w", err)
	}
	defer rows.Close()
	var out []Drift
	for rows.Next() {
		var d Drift
		var at string
		if err := rows.Scan(&d.ID, &d.Node, &d.Container, &at); err != nil {
			return nil, fmt.Errorf("reading drift events: %w", err)
		}
		d.Time = parseTime(at)
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteVaultSecret deletes a secret and every version of it.
func (s *Store) DeleteVaultSecret(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM vault_versions WHERE name = ?`), name); err != nil {
			return fmt.Errorf("deleting secret %q: %w", name, err)
		}
		res, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM vault_secrets WHERE name = ?`), name)
		if err != nil {
			return fmt.Errorf("deleting secret %q: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("secret %q: %w", name, ErrNotFound)
		}
		return nil
	})
}
