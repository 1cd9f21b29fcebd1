package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// AdvisoryUpdater imports advisory sources into the server's advisory
// database and re-evaluates the stored images against what changed; the
// server's updater task is one.
type AdvisoryUpdater interface {
	Import(ctx context.Context, sources []vulndb.Source, actor string) (AdvisoryImportSummary, error)
	// Sources are the sources configured at start (--advisory-source):
	// the only ones the API may import.
	Sources() []vulndb.Source
}

// UseAdvisoryUpdater gives the API the server's advisory updater, which
// POST /api/v1/advisories/import calls. Call it before serving; without it
// that route answers 503.
func (h *Handler) UseAdvisoryUpdater(u AdvisoryUpdater) { h.advisory = u }

// AdvisoryImportRequest is POST /api/v1/advisories/import.
type AdvisoryImportRequest struct {
	// Sources name sources configured at server start (--advisory-source),
	// by name or by their exact location; omitted, every configured
	// source. The API never reads a location of its caller's choosing: a
	// path would read server-local files (and tell whether they exist),
	// a URL would make the server fetch addresses it should not.
	Sources []string `json:"sources,omitempty"`
}

// AdvisoryImportSummary is what one import and the re-evaluation after it
// did.
type AdvisoryImportSummary struct {
	Imports     []vulndb.Result     `json:"imports"`
	Changed     int                 `json:"changed"`   // records inserted or updated
	Affected    int                 `json:"affected"`  // stored digests holding a changed package
	Rematched   int                 `json:"rematched"` // affected digests matched again and judged
	Revocations []reeval.Revocation `json:"revocations"`
	Duration    time.Duration       `json:"-"` // import and re-evaluation; encoded as durationSeconds
}

// importAdvisories imports the sources and re-evaluates, synchronously
// (an import of a local directory takes milliseconds, a full OSV export
// seconds to a minute). A client that goes away does not stop the work.
// Crash safety is the updater's: the import's change log is re-read on
// restart until its re-evaluation completed.
func (h *Handler) importAdvisories(w http.ResponseWriter, r *http.Request) error {
	if h.advisory == nil {
		return errorf(http.StatusServiceUnavailable, nil, "this server has no advisory database")
	}
	var req AdvisoryImportRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	srcs, err := configuredSources(h.advisory.Sources(), req.Sources)
	if err != nil {
		return err
	}
	ctx := context.WithoutCancel(r.Context())
	actor := principal(ctx).Actor()
	sum, err := h.advisory.Import(ctx, srcs, actor)
	if err != nil {
		return errorf(http.StatusBadGateway, err, "%v", err)
	}
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = s.Name
	}
	after, _ := json.Marshal(map[string]any{
		"sources": names, "changed": sum.Changed, "affected": sum.Affected,
		"rematched": sum.Rematched, "revocations": len(sum.Revocations),
	})
	if err := h.auditor.Append(ctx, audit.Entry{
		Actor: actor, Action: "advisory.import", Object: "advisories", After: after,
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sum)
	return nil
}

// configuredSources picks the configured sources asked for by name or
// exact location; none asked: all of them. Anything else is refused
// without being looked at.
func configuredSources(configured []vulndb.Source, asked []string) ([]vulndb.Source, error) {
	if len(configured) == 0 {
		return nil, errorf(http.StatusConflict, nil, "this server has no configured advisory source (start it with --advisory-source)")
	}
	if asked == nil {
		return configured, nil
	}
	if len(asked) == 0 {
		return nil, errorf(http.StatusBadRequest, nil, `"sources" is empty: omit it to import every configured source`)
	}
	var out []vulndb.Source
	for _, a := range asked {
		i := slices.IndexFunc(configured, func(s vulndb.Source) bool { return s.Name == a || s.Location == a })
		if i < 0 {
			names := make([]string, len(configured))
			for j, s := range configured {
				names[j] = s.Name
			}
			return nil, errorf(http.StatusBadRequest, nil, "source %q is not configured (configured: %s); sources are configured at start with --advisory-source", a, strings.Join(names, ", "))
		}
		if !slices.Contains(out, configured[i]) {
			out = append(out, configured[i])
		}
	}
	return out, nil
}

// CertificationRequest is POST /api/v1/images/{digest}/certification.
type CertificationRequest struct {
	Status string `json:"status"` // certified, revoked or not_certified
	Reason string `json:"reason,omitempty"`
}

// setCertification records an image's certification by hand: the way to
// certify until `bulwark certify` reports to the server. Audited as
// certification.set with the previous and new state.
func (h *Handler) setCertification(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	digest := r.PathValue("digest")
	var req CertificationRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	switch req.Status {
	case store.Certified, store.Revoked, store.NotCertified:
	default:
		return errorf(http.StatusBadRequest, nil, "unknown status %q (want certified, revoked or not_certified)", req.Status)
	}
	if _, err := h.store.Image(ctx, digest); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "image %s not found", digest)
	} else if err != nil {
		return err
	}
	var now store.Certification
	err := h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		old, err := tx.Certification(ctx, digest)
		hadOld := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err := tx.SetCertification(ctx, digest, req.Status, req.Reason); err != nil {
			return nil, err
		}
		if now, err = tx.Certification(ctx, digest); err != nil {
			return nil, err
		}
		// The outbox event: the server publishes it as a notification.
		if now.Status != old.Status && (now.Status == store.Certified || now.Status == store.Revoked) {
			if err := tx.EnqueueCertificationEvent(ctx, store.CertificationEvent{Digest: digest, Status: now.Status, Reason: now.Reason, Time: now.Updated}); err != nil {
				return nil, err
			}
		}
		var before []byte
		if hadOld {
			before, _ = json.Marshal(map[string]string{"status": old.Status, "reason": old.Reason})
		}
		after, _ := json.Marshal(map[string]string{"status": now.Status, "reason": now.Reason})
		action := "certification.set"
		if req.Status == store.Revoked {
			action = "certification.revoke"
		}
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: action, Object: digest, Before: before, After: after}}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, now)
	return nil
}

// RollbackTarget is GET /api/v1/repositories/{repository}/rollback.
type RollbackTarget struct {
	Repository string      `json:"repository"`
	Digest     string      `json:"digest"`
	Image      store.Image `json:"image"`
}

// repository serves GET /api/v1/repositories/{path...}: today only
// {repository}/rollback. A mux wildcard that spans segments ({x...}) must
// end the pattern, so the suffix is cut here.
func (h *Handler) repository(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	repo, ok := strings.CutSuffix(r.PathValue("path"), "/rollback")
	if !ok || repo == "" {
		return errorf(http.StatusNotFound, nil, "not found (want /api/v1/repositories/{repository}/rollback)")
	}
	e := &reeval.Engine{Store: h.store}
	digest, err := e.RollbackTarget(ctx, repo)
	if err != nil {
		return err
	}
	if digest == "" {
		return errorf(http.StatusNotFound, nil, "repository %s has no certified image", repo)
	}
	img, err := h.store.Image(ctx, digest)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RollbackTarget{Repository: repo, Digest: digest, Image: img})
	return nil
}
