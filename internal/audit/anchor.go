package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Anchor is the latest entry's seq and hash, kept outside the database so
// that removing the newest entries is detectable. It proves as much as the
// place it is kept: a copy next to the database only helps against someone
// who can edit the database but not that file; ship it elsewhere (a log
// collector, object storage with retention, a transparency log) for more.
type Anchor struct {
	Seq  int64  `json:"seq"`
	Hash []byte `json:"hash"` // base64 in JSON
}

// AnchorPath is the conventional anchor file of the database at dbPath:
// dbPath + ".audit-anchor".
func AnchorPath(dbPath string) string { return dbPath + ".audit-anchor" }

// WriteAnchor replaces the anchor file at path with e's seq and hash. Call
// it after the transaction that appended e committed, so the anchor never
// names an entry that was rolled back. The file is replaced atomically.
func WriteAnchor(path string, e Entry) error {
	data, err := json.Marshal(Anchor{Seq: e.Seq, Hash: e.Hash})
	if err != nil {
		return fmt.Errorf("encoding the audit anchor: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ReadAnchor reads the anchor file at path.
func ReadAnchor(path string) (Anchor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Anchor{}, fmt.Errorf("reading %s: %w", path, err)
	}
	var a Anchor
	if err := json.Unmarshal(data, &a); err != nil {
		return Anchor{}, fmt.Errorf("decoding %s: %w", path, err)
	}
	return a, nil
}
