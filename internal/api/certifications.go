package api

import (
	"context"
	"net/http"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// CertificationLister lists certifications for the admission webhook's
// feed.
type CertificationLister interface {
	ListCertifications(ctx context.Context, since time.Time) ([]store.CertificationListing, error)
}

// CertificationList is the body of GET /api/v1/certifications.
type CertificationList struct {
	Certifications []store.CertificationListing `json:"certifications"`
}

// listCertifications serves every certification, or with ?since=RFC3339
// those whose status or tags changed after that time, oldest change
// first: admission webhooks poll it to fill and invalidate their caches.
// Each entry is the digest's current state; pollers ask with since a
// little before the newest Updated they saw (see
// store.CertificationListing.Updated), as a change can commit after a
// later-stamped one.
func (h *Handler) listCertifications(w http.ResponseWriter, r *http.Request) error {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return errorf(http.StatusBadRequest, err, "since %q: want an RFC 3339 time", s)
		}
		since = t
	}
	list, err := h.store.ListCertifications(r.Context(), since)
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.CertificationListing{}
	}
	writeJSON(w, http.StatusOK, CertificationList{Certifications: list})
	return nil
}
