package vulndb

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Export writes a consistent copy of the database (a SQLite file, compacted
// by VACUUM INTO) to w. Imports may run meanwhile; the copy is the database
// as of the moment Export starts.
func (db *DB) Export(ctx context.Context, w io.Writer) error {
	snap, err := db.snapshot(ctx)
	if err != nil {
		return err
	}
	defer os.Remove(snap)
	f, err := os.Open(snap)
	if err != nil {
		return fmt.Errorf("exporting database: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("exporting database: %w", err)
	}
	return nil
}

// snapshot writes a compacted copy of the database to a temporary file
// next to it; the caller removes it.
func (db *DB) snapshot(ctx context.Context) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(db.path), ".export-*.db")
	if err != nil {
		return "", fmt.Errorf("exporting database: %w", err)
	}
	tmp.Close() // VACUUM INTO wants a missing or empty file
	if _, err := db.sql.ExecContext(ctx, "VACUUM INTO ?", tmp.Name()); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("exporting database: %w", err)
	}
	return tmp.Name(), nil
}
