package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Attachment is a signature, attestation or SBOM found in a registry,
// attached to the image (Subject) it is about. It is never scanned.
type Attachment struct {
	// Repository and Source (the tag it was found under) say where it is;
	// a source is replaced as a whole when its tag moves.
	Repository string `json:"repository"`
	Source     string `json:"source"`
	// Artifact is the manifest's digest, Layer the layer's ("" for the
	// artifact as a whole).
	Artifact      string    `json:"artifact"`
	Layer         string    `json:"layer,omitempty"`
	Subject       string    `json:"subject"`
	Kind          string    `json:"kind"` // signature, attestation, sbom, artifact
	MediaType     string    `json:"mediaType,omitempty"`
	PredicateType string    `json:"predicateType,omitempty"`
	KeyID         string    `json:"keyId,omitempty"`
	Identity      string    `json:"identity,omitempty"`
	Verified      bool      `json:"verified"`
	Seen          time.Time `json:"seen"`
}

// AttachedArtifact returns the digest of the artifact recorded under
// repository's source tag, "" when none is.
func (s *Store) AttachedArtifact(ctx context.Context, repository, source string) (string, error) {
	var d string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT artifact FROM attachments
		WHERE repository = ? AND source = ? LIMIT 1`), repository, source).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the attachments of %s:%s: %w", repository, source, err)
	}
	return d, nil
}

// ReplaceAttachments records items as what repository's source tag holds
// now, in one transaction, replacing what it held before. Their
// Repository, Source and Seen are set here.
func (s *Store) ReplaceAttachments(ctx context.Context, repository, source string, items []Attachment) error {
	seen := formatTime(s.now())
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM attachments WHERE repository = ? AND source = ?`), repository, source); err != nil {
			return fmt.Errorf("replacing the attachments of %s:%s: %w", repository, source, err)
		}
		for _, a := range items {
			verified := 0
			if a.Verified {
				verified = 1
			}
			if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO attachments (repository, source, artifact, layer,
				subject, kind, media_type, predicate_type, key_id, identity, verified, seen)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				repository, source, a.Artifact, a.Layer, a.Subject, a.Kind, a.MediaType,
				a.PredicateType, a.KeyID, a.Identity, verified, seen); err != nil {
				return fmt.Errorf("recording the attachments of %s:%s: %w", repository, source, err)
			}
		}
		return nil
	})
}

// Attachments returns what is attached to the image digest, in every
// repository, by kind, repository, source and layer.
func (s *Store) Attachments(ctx context.Context, digest string) ([]Attachment, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT repository, source, artifact, layer, subject, kind,
		media_type, predicate_type, key_id, identity, verified, seen FROM attachments
		WHERE subject = ? ORDER BY kind, repository, source, layer`), digest)
	if err != nil {
		return nil, fmt.Errorf("listing the attachments of %s: %w", digest, err)
	}
	defer rows.Close()
	out := []Attachment{}
	for rows.Next() {
		var (
			a        Attachment
			verified int
			seen     string
		)
		if err := rows.Scan(&a.Repository, &a.Source, &a.Artifact, &a.Layer, &a.Subject, &a.Kind,
			&a.MediaType, &a.PredicateType, &a.KeyID, &a.Identity, &verified, &seen); err != nil {
			return nil, fmt.Errorf("listing the attachments of %s: %w", digest, err)
		}
		a.Verified, a.Seen = verified == 1, parseTime(seen)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the attachments of %s: %w", digest, err)
	}
	return out, nil
}

// PruneAttachments forgets what repository's tags not in keep held (the
// tag was deleted from the registry) and returns how many tags it forgot.
func (s *Store) PruneAttachments(ctx context.Context, repository string, keep []string) (int, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT DISTINCT source FROM attachments WHERE repository = ?`), repository)
	if err != nil {
		return 0, fmt.Errorf("pruning the attachments of %s: %w", repository, err)
	}
	var sources []string
	for rows.Next() {
		var src string
		if err := rows.Scan(&src); err != nil {
			rows.Close()
			return 0, fmt.Errorf("pruning the attachments of %s: %w", repository, err)
		}
		sources = append(sources, src)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("pruning the attachments of %s: %w", repository, err)
	}
	want := make(map[string]bool, len(keep))
	for _, t := range keep {
		want[t] = true
	}
	n := 0
	for _, src := range sources {
		if want[src] {
			continue
		}
		if _, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM attachments WHERE repository = ? AND source = ?`), repository, src); err != nil {
			return n, fmt.Errorf("pruning the attachments of %s:%s: %w", repository, src, err)
		}
		n++
	}
	return n, nil
}
