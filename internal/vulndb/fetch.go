package vulndb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// download fetches src's zip into a temporary file next to the database.
// When the database holds an ETag from the same URL, the request is
// conditional and a 304 answer returns notModified. The caller removes
// file; on error nothing is left behind.
func (db *DB) download(ctx context.Context, src Source) (file, etag string, notModified bool, err error) {
	var oldURL, oldETag string
	err = db.sql.QueryRowContext(ctx, "SELECT url, etag FROM sources WHERE name = ?", src.Name).Scan(&oldURL, &oldETag)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", "", false, fmt.Errorf("reading source %s: %w", src.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.Location, nil)
	if err != nil {
		return "", "", false, fmt.Errorf("fetching %s: %w", src.Location, err)
	}
	req.Header.Set("User-Agent", "bulwark")
	if oldETag != "" && oldURL == src.Location {
		req.Header.Set("If-None-Match", oldETag)
	}
	client := db.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", false, fmt.Errorf("fetching %s: %w", src.Location, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return "", "", true, nil
	default:
		return "", "", false, fmt.Errorf("fetching %s: %s", src.Location, resp.Status)
	}
	limit := db.maxArchive()
	if resp.ContentLength > limit {
		return "", "", false, fmt.Errorf("fetching %s: %d bytes is more than the limit of %d", src.Location, resp.ContentLength, limit)
	}
	if db.Progress != nil {
		fmt.Fprintf(db.Progress, "%s: downloading %s\n", src.Name, src.Location)
	}
	tmp, err := os.CreateTemp(filepath.Dir(db.path), ".download-*.zip")
	if err != nil {
		return "", "", false, fmt.Errorf("fetching %s: %w", src.Location, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return "", "", false, fmt.Errorf("fetching %s: after %d bytes: %w", src.Location, n, err)
	}
	if n > limit {
		return "", "", false, fmt.Errorf("fetching %s: more than the limit of %d bytes", src.Location, limit)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", "", false, fmt.Errorf("fetching %s: got %d of %d bytes", src.Location, n, resp.ContentLength)
	}
	if err = tmp.Close(); err != nil {
		return "", "", false, fmt.Errorf("fetching %s: %w", src.Location, err)
	}
	return tmp.Name(), resp.Header.Get("ETag"), false, nil
}
