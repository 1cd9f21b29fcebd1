package vulndb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bulwark-sec/bulwark/internal/osv"
)

// ErrNoAdvisory is Advisory's answer for an id the database does not hold
// (or holds withdrawn).
var ErrNoAdvisory = errors.New("no such advisory")

// Advisory returns the record with id (a record id such as
// "DEBIAN-CVE-2023-47038" or "GHSA-29mw-wpgm-hmr9", not an alias), or an
// error wrapping ErrNoAdvisory when it is absent or withdrawn. The web
// console's vulnerability page starts from it.
func (db *DB) Advisory(ctx context.Context, id string) (*osv.Record, error) {
	var data []byte
	err := db.sql.QueryRowContext(ctx, `SELECT data FROM advisories WHERE id = ? AND withdrawn = 0`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading advisory %q: %w", id, ErrNoAdvisory)
	}
	if err != nil {
		return nil, fmt.Errorf("reading advisory %q: %w", id, err)
	}
	r, _, err := decodeRecord(data, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding advisory %q: %w", id, err)
	}
	return r, nil
}
