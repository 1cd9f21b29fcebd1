package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// HygieneStore is what the hygiene and revocation listings need.
type HygieneStore interface {
	HygieneRepositories(ctx context.Context, repository string) ([]store.RepositoryReport, error)
	StaleImages(ctx context.Context, olderThan time.Duration) ([]store.ImageReport, error)
	UntaggedImages(ctx context.Context) ([]store.ImageReport, error)
	RemovalImages(ctx context.Context) ([]store.ImageReport, error)
	RevokedImages(ctx context.Context) ([]store.RevokedImage, error)
}

// ParseAge parses an age threshold: a whole number of days ("180d") or a
// Go duration ("36h", "90m"). It must be positive.
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil || n == 0 || n > 100*365 {
			return 0, fmt.Errorf("age %q: want a positive whole number of days (1-36500) such as 180d, or a Go duration such as 36h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("age %q: want a number of days such as 180d, or a positive Go duration such as 36h", s)
	}
	return d, nil
}

// hygieneRepositories is GET /api/v1/hygiene/repositories[?repository=R].
func (h *Handler) hygieneRepositories(w http.ResponseWriter, r *http.Request) error {
	repos, err := h.store.HygieneRepositories(r.Context(), r.URL.Query().Get("repository"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"repositories": nonNil(repos)})
	return nil
}

// hygieneStale is GET /api/v1/hygiene/stale[?olderThan=180d].
func (h *Handler) hygieneStale(w http.ResponseWriter, r *http.Request) error {
	olderThan := store.DefaultStaleAfter
	if s := r.URL.Query().Get("olderThan"); s != "" {
		d, err := ParseAge(s)
		if err != nil {
			return errorf(http.StatusBadRequest, err, "olderThan: %v", err)
		}
		olderThan = d
	}
	imgs, err := h.store.StaleImages(r.Context(), olderThan)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"olderThan": olderThan.String(), "images": nonNil(imgs)})
	return nil
}

// hygieneUntagged is GET /api/v1/hygiene/untagged.
func (h *Handler) hygieneUntagged(w http.ResponseWriter, r *http.Request) error {
	imgs, err := h.store.UntaggedImages(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": nonNil(imgs)})
	return nil
}

// hygieneRemoval is GET /api/v1/hygiene/removal: images of end-of-life
// applications.
func (h *Handler) hygieneRemoval(w http.ResponseWriter, r *http.Request) error {
	imgs, err := h.store.RemovalImages(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": nonNil(imgs)})
	return nil
}

// listRevocations is GET /api/v1/revocations: revoked images with their
// repositories' rollback targets.
func (h *Handler) listRevocations(w http.ResponseWriter, r *http.Request) error {
	revs, err := h.store.RevokedImages(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revocations": nonNil(revs)})
	return nil
}
