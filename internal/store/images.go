package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Image is one digest the control plane has seen.
type Image struct {
	Digest       string    `json:"digest"`
	Repository   string    `json:"repository"`
	ConfigDigest string    `json:"configDigest,omitempty"`
	Created      time.Time `json:"created"` // the image config's created time
	FirstSeen    time.Time `json:"firstSeen"`
	LastSeen     time.Time `json:"lastSeen"`
	Size         int64     `json:"size"`
	// Labels are the image config's labels (owner, team, ...).
	Labels map[string]string `json:"labels,omitempty"`
	// BaseImage is the approved base image the image was built on, as the
	// policy's base-image rule found it; "" when unknown.
	BaseImage string `json:"baseImage,omitempty"`
	// LastScanned is when the server last catalogued and matched it.
	LastScanned time.Time `json:"lastScanned"`
	// Findings counts the last match's findings by severity name
	// (CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN).
	Findings map[string]int `json:"findings,omitempty"`
	// Config is the raw image config JSON, which the policy judges
	// (user, labels, history); nil when not stored.
	Config []byte `json:"-"`
}

// PutImage records img. A new digest gets FirstSeen; a known one keeps it.
// LastSeen is img.LastSeen, or now when zero.
func (s *Store) PutImage(ctx context.Context, img Image) error {
	seen := img.LastSeen
	if seen.IsZero() {
		seen = s.now()
	}
	findings := ""
	if len(img.Findings) > 0 {
		b, err := json.Marshal(img.Findings)
		if err != nil {
			return fmt.Errorf("storing image %s: %w", img.Digest, err)
		}
		findings = string(b)
	}
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO images
		(digest, repository, config_digest, created, first_seen, last_seen, size,
		 config, base_image, last_scanned, findings)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (digest) DO UPDATE SET repository = excluded.repository,
			config_digest = excluded.config_digest, created = excluded.created,
			last_seen = excluded.last_seen, size = excluded.size,
			config = COALESCE(excluded.config, images.config),
			base_image = excluded.base_image,
			last_scanned = CASE WHEN excluded.last_scanned = '' THEN images.last_scanned ELSE excluded.last_scanned END,
			findings = CASE WHEN excluded.last_scanned = '' THEN images.findings ELSE excluded.findings END`),
		img.Digest, img.Repository, img.ConfigDigest, formatTime(img.Created),
		formatTime(seen), formatTime(seen), img.Size,
		nilIfEmpty(img.Config), img.BaseImage, formatTime(img.LastScanned), findings)
	if err != nil {
		return fmt.Errorf("storing image %s: %w", img.Digest, err)
	}
	return nil
}

// nilIfEmpty stores an empty blob as NULL.
func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

const imageColumns = `digest, repository, config_digest, created, first_seen, last_seen, size,
	config, base_image, last_scanned, findings`

type scanner interface{ Scan(dest ...any) error }

func scanImage(r scanner) (Image, error) {
	var (
		img                               Image
		created, first, lastSeen, scanned string
		findings                          string
	)
	err := r.Scan(&img.Digest, &img.Repository, &img.ConfigDigest, &created, &first, &lastSeen, &img.Size,
		&img.Config, &img.BaseImage, &scanned, &findings)
	if err != nil {
		return img, err
	}
	img.Created, img.FirstSeen, img.LastSeen = parseTime(created), parseTime(first), parseTime(lastSeen)
	img.LastScanned = parseTime(scanned)
	if findings != "" {
		if err := json.Unmarshal([]byte(findings), &img.Findings); err != nil {
			return img, fmt.Errorf("decoding findings of %s: %w", img.Digest, err)
		}
	}
	if len(img.Config) > 0 {
		var cfg struct {
			Config struct {
				Labels map[string]string `json:"Labels"`
			} `json:"config"`
		}
		if json.Unmarshal(img.Config, &cfg) == nil {
			img.Labels = cfg.Config.Labels
		}
	}
	return img, nil
}

// Image returns the image with digest, or ErrNotFound.
func (s *Store) Image(ctx context.Context, digest string) (Image, error) {
	img, err := scanImage(s.db.QueryRowContext(ctx,
		s.d.q(`SELECT `+imageColumns+` FROM images WHERE digest = ?`), digest))
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("reading image %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("reading image %s: %w", digest, err)
	}
	return img, nil
}

// ListImages returns the images of repository, newest created first.
func (s *Store) ListImages(ctx context.Context, repository string) ([]Image, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT `+imageColumns+` FROM images
		WHERE repository = ? ORDER BY created DESC, digest`), repository)
	if err != nil {
		return nil, fmt.Errorf("listing images of %s: %w", repository, err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("listing images of %s: %w", repository, err)
		}
		out = append(out, img)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing images of %s: %w", repository, err)
	}
	return out, nil
}

// Tag is a name in a repository pointing at a digest.
type Tag struct {
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Digest     string    `json:"digest"`
	Updated    time.Time `json:"updated"`
}

// SetTag points repository:tag at digest. Updated changes only when the
// tag moves.
func (s *Store) SetTag(ctx context.Context, repository, tag, digest string) error {
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO tags (repository, tag, digest, updated)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated = excluded.updated
		WHERE tags.digest <> excluded.digest`),
		repository, tag, digest, formatTime(s.now()))
	if err != nil {
		return fmt.Errorf("setting tag %s:%s: %w", repository, tag, err)
	}
	return nil
}

// Tags returns the tags of repository, by name.
func (s *Store) Tags(ctx context.Context, repository string) ([]Tag, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT repository, tag, digest, updated FROM tags
		WHERE repository = ? ORDER BY tag`), repository)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repository, err)
	}
	defer rows.Close()
	var out []Tag
	for rows.Next() {
		var (
			t       Tag
			updated string
		)
		if err := rows.Scan(&t.Repository, &t.Tag, &t.Digest, &updated); err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", repository, err)
		}
		t.Updated = parseTime(updated)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repository, err)
	}
	return out, nil
}

// SetFindings replaces the findings counts of several images (digest ->
// severity name -> count) in one transaction, as a re-evaluation leaves
// them; unknown digests are skipped.
func (s *Store) SetFindings(ctx context.Context, counts map[string]map[string]int) error {
	if len(counts) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for digest, c := range counts {
			b, err := json.Marshal(c)
			if err != nil {
				return fmt.Errorf("storing findings of %s: %w", digest, err)
			}
			if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE images SET findings = ? WHERE digest = ?`), string(b), digest); err != nil {
				return fmt.Errorf("storing findings of %s: %w", digest, err)
			}
		}
		return nil
	})
}

// TouchImage records that digest was seen now (a poll found a tag still
// pointing at it). Unknown digests are ignored.
func (s *Store) TouchImage(ctx context.Context, digest string) error {
	if _, err := s.db.ExecContext(ctx, s.d.q(`UPDATE images SET last_seen = ? WHERE digest = ?`),
		formatTime(s.now()), digest); err != nil {
		return fmt.Errorf("touching image %s: %w", digest, err)
	}
	return nil
}

// PruneTags deletes the tags of repository that are not in keep (the
// registry's current tag list), so a deleted tag stops pointing at its
// digest (which may then be untagged). It returns how many were deleted.
func (s *Store) PruneTags(ctx context.Context, repository string, keep []string) (int, error) {
	have, err := s.Tags(ctx, repository)
	if err != nil {
		return 0, err
	}
	want := make(map[string]bool, len(keep))
	for _, t := range keep {
		want[t] = true
	}
	n := 0
	for _, t := range have {
		if want[t.Tag] {
			continue
		}
		if _, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM tags WHERE repository = ? AND tag = ?`), repository, t.Tag); err != nil {
			return n, fmt.Errorf("deleting tag %s:%s: %w", repository, t.Tag, err)
		}
		n++
	}
	return n, nil
}
