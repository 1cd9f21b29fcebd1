package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// CertificationLister lists certifications for the admission webhook's
// feed.
type CertificationLister interface {
	ListCertifications(ctx context.Context, since time.Time) ([]store.CertificationListing, error)
	CertificationChanges(ctx context.Context, seq int64) ([]string, int64, error)
	CertificationsOf(ctx context.Context, digests []string) ([]store.CertificationListing, error)
}

// CertificationList is the body of GET /api/v1/certifications.
type CertificationList struct {
	Certifications []store.CertificationListing `json:"certifications"`
	// AuditSeq is the audit log's newest sequence number when the list was
	// read: pass it as afterAudit next time.
	AuditSeq int64 `json:"auditSeq"`
}

// listCertifications serves every certification, or with ?since=RFC3339
// those whose status or tags changed after that time, oldest change
// first: admission webhooks poll it to fill and invalidate their caches.
// With ?afterAudit=N it also lists every digest whose certification
// changed in an audit entry after N, in commit order whatever the clocks
// (store.CertificationChanges); the answer's auditSeq is the next N.
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
	var afterAudit int64
	if s := r.URL.Query().Get("afterAudit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, err, "afterAudit %q: want an audit sequence number", s)
		}
		afterAudit = n
	}
	// The audit cursor first: a change committed after it was read is
	// listed next time.
	changed, seq, err := h.store.CertificationChanges(r.Context(), afterAudit)
	if err != nil {
		return err
	}
	list, err := h.store.ListCertifications(r.Context(), since)
	if err != nil {
		return err
	}
	if afterAudit > 0 && len(changed) > 0 {
		// Certification changes by commit order: whatever their time
		// stamp, those since the poller's audit cursor are listed.
		extra, err := h.store.CertificationsOf(r.Context(), changed)
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(list))
		for _, l := range list {
			seen[l.Digest] = true
		}
		for _, l := range extra {
			if !seen[l.Digest] {
				list = append(list, l)
			}
		}
	}
	if list == nil {
		list = []store.CertificationListing{}
	}
	writeJSON(w, http.StatusOK, CertificationList{Certifications: list, AuditSeq: seq})
	return nil
}
