package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// One encoder and decoder for the process: EncodeAll and DecodeAll are safe
// for concurrent use.
var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

// gobFormat starts a stored inventory encoded with encoding/gob; one that
// starts with '{' is JSON (as the first stores wrote them). Gob decodes an
// SBOM of 100 packages in less than half the time of encoding/json, and
// decoding stored inventories is most of a re-evaluation (bench/reeval).
// The store writes and reads its own data: gob's lack of a schema outside
// Go is no loss, and it tolerates added and removed fields.
const gobFormat byte = 0

// PutInventory stores the inventory of digest (gob, zstd-compressed)
// and, in the same transaction, replaces digest's rows in the package index
// with one per distinct (ecosystem, name, version) osv.QueryFor gives:
// distribution packages under their source package and release
// ("Debian:12", "openssl"). distro overrides inv.Distro when not nil.
func (s *Store) PutInventory(ctx context.Context, digest string, inv *sbom.SBOM, distro *sbom.Distro) error {
	if distro == nil {
		distro = inv.Distro
	}
	var buf bytes.Buffer
	buf.WriteByte(gobFormat)
	if err := gob.NewEncoder(&buf).Encode(inv); err != nil {
		return fmt.Errorf("encoding inventory of %s: %w", digest, err)
	}
	blob := zenc.EncodeAll(buf.Bytes(), nil)
	type row struct{ eco, name, version string }
	seen := map[row]bool{}
	var index []row
	for _, p := range inv.Packages {
		q, ok := osv.QueryFor(p, distro)
		if !ok {
			continue
		}
		eco, name := osv.Key(q.Ecosystem, q.Name)
		r := row{eco, name, q.Version}
		if !seen[r] {
			seen[r] = true
			index = append(index, r)
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO inventories (digest, sbom, stored) VALUES (?, ?, ?)
			ON CONFLICT (digest) DO UPDATE SET sbom = excluded.sbom, stored = excluded.stored`),
			digest, blob, formatTime(s.now())); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM packages WHERE digest = ?`), digest); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, s.d.q(`INSERT INTO packages (ecosystem, name, digest, version) VALUES (?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, r := range index {
			if _, err := ins.ExecContext(ctx, r.eco, r.name, digest, r.version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing inventory of %s: %w", digest, err)
	}
	return nil
}

// Inventory returns the stored inventory of digest, or ErrNotFound.
func (s *Store) Inventory(ctx context.Context, digest string) (*sbom.SBOM, error) {
	var blob []byte
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT sbom FROM inventories WHERE digest = ?`), digest).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading inventory of %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading inventory of %s: %w", digest, err)
	}
	data, err := zdec.DecodeAll(blob, nil)
	if err != nil {
		return nil, fmt.Errorf("decompressing inventory of %s: %w", digest, err)
	}
	var inv sbom.SBOM
	if len(data) > 0 && data[0] == gobFormat {
		err = gob.NewDecoder(bytes.NewReader(data[1:])).Decode(&inv)
	} else {
		err = json.Unmarshal(data, &inv)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding inventory of %s: %w", digest, err)
	}
	return &inv, nil
}

// DigestsFor returns the digests whose inventory holds the package
// (ecosystem, name), as an advisory names it ("Debian:12", "openssl";
// "npm", "lodash"), sorted: the images one advisory can affect. It is one
// range scan of the (ecosystem, name, digest, version) primary key.
func (s *Store) DigestsFor(ctx context.Context, ecosystem, name string) ([]string, error) {
	eco, n := osv.Key(ecosystem, name)
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT DISTINCT digest FROM packages
		WHERE ecosystem = ? AND name = ? ORDER BY digest`), eco, n)
	if err != nil {
		return nil, fmt.Errorf("looking up digests with %s/%s: %w", ecosystem, name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("looking up digests with %s/%s: %w", ecosystem, name, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up digests with %s/%s: %w", ecosystem, name, err)
	}
	return out, nil
}
