package store

import (
	"context"
	"fmt"
	"strconv"
)

// ImagePos is a position in a listing of images: the sort key of the last
// image served (its created time in a repository's listing, its last seen
// time in the listing of all) and its digest, which breaks ties.
type ImagePos struct {
	Key    string `json:"k"`
	Digest string `json:"d"`
}

// ImagesPage lists up to limit images after pos (nil: from the start):
// those of repository newest created first, or, when repository is "",
// every image most recently seen first. The next page starts after the
// last image's ImagePosOf. Stable under inserts: a page never repeats an
// image of an earlier one.
func (s *Store) ImagesPage(ctx context.Context, repository string, pos *ImagePos, limit int) ([]Image, error) {
	col, where, args := "last_seen", "1 = 1", []any{}
	if repository != "" {
		col, where, args = "created", "repository = ?", []any{repository}
	}
	if pos != nil {
		where += ` AND (` + col + ` < ? OR (` + col + ` = ? AND digest > ?))`
		args = append(args, pos.Key, pos.Key, pos.Digest)
	}
	query := `SELECT ` + imageColumns + ` FROM images WHERE ` + where +
		` ORDER BY ` + col + ` DESC, digest LIMIT ` + strconv.Itoa(max(limit, 1))
	rows, err := s.db.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	defer rows.Close()
	out := []Image{}
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("listing images: %w", err)
		}
		out = append(out, img)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	return out, nil
}

// ImagePosOf is img's position in ImagesPage's listing of repository
// ("" for all images).
func ImagePosOf(img Image, repository string) ImagePos {
	if repository != "" {
		return ImagePos{Key: formatTime(img.Created), Digest: img.Digest}
	}
	return ImagePos{Key: formatTime(img.LastSeen), Digest: img.Digest}
}
