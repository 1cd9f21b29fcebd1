package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// fileTableSchema keeps, per scanned digest, the part of its file table an
// allowlist is made of (allowlist.Table: executables, shared libraries and
// every file with a content digest, and the symlinks the entrypoint is
// resolved through), apart from the inventory so that re-evaluation,
// which decodes inventories, does not decode file tables too. A digest's
// content never changes, so neither does its row once written.
var fileTableSchema = `CREATE TABLE file_tables (
	digest  TEXT PRIMARY KEY REFERENCES inventories(digest) ON DELETE CASCADE,
	files   {blob} NOT NULL,
	entries INTEGER NOT NULL,
	stored  TEXT NOT NULL
);`

// PutFileTable stores the allowlist file table of digest (gob,
// zstd-compressed), replacing any before. The digest's inventory must be
// stored first.
func (s *Store) PutFileTable(ctx context.Context, digest string, files []sbom.File) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(files); err != nil {
		return fmt.Errorf("encoding the file table of %s: %w", digest, err)
	}
	blob := zenc.EncodeAll(buf.Bytes(), nil)
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO file_tables (digest, files, entries, stored) VALUES (?, ?, ?, ?)
		ON CONFLICT (digest) DO UPDATE SET files = excluded.files, entries = excluded.entries, stored = excluded.stored`),
		digest, blob, len(files), formatTime(s.now()))
	if err != nil {
		return fmt.Errorf("storing the file table of %s: %w", digest, err)
	}
	return nil
}

// FileTable returns the stored allowlist file table of digest, or
// ErrNotFound (never scanned, or scanned before file tables were kept).
func (s *Store) FileTable(ctx context.Context, digest string) ([]sbom.File, error) {
	var blob []byte
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT files FROM file_tables WHERE digest = ?`), digest).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading the file table of %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the file table of %s: %w", digest, err)
	}
	data, err := zdec.DecodeAll(blob, nil)
	if err != nil {
		return nil, fmt.Errorf("decompressing the file table of %s: %w", digest, err)
	}
	var files []sbom.File
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&files); err != nil {
		return nil, fmt.Errorf("decoding the file table of %s: %w", digest, err)
	}
	return files, nil
}
