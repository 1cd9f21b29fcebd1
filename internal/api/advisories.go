package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
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
}

// UseAdvisoryUpdater gives the API the server's advisory updater, which
// POST /api/v1/advisories/import calls. Call it before serving; without it
// that route answers 503.
func (h *Handler) UseAdvisoryUpdater(u AdvisoryUpdater) { h.advisory = u }

// AdvisoryImportRequest is POST /api/v1/advisories/import.
type AdvisoryImportRequest struct {
	// Sources are vulndb sources as `bulwark db import` takes them: an
	// http(s) URL of an OSV all.zip, a local zip, a directory of *.json
	// records or one record, optionally "NAME=LOCATION".
	Sources []string `json:"sources"`
}

// AdvisoryImportSummary is what one import and the re-evaluation after it
// did.
type AdvisoryImportSummary struct {
	Imports     []vulndb.Result     `json:"imports"`
	Changed     int                 `json:"changed"`   // records inserted or updated
	Affected    int                 `json:"affected"`  // stored digests holding a changed package
	Rematched   int                 `json:"rematched"` // affected digests matched again and judged
	Revocations []reeval.Revocation `json:"revocations"`
	Duration    time.Duration       `json:"duration"` // nanoseconds, import and re-evaluation
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
	if len(req.Sources) == 0 {
		return errorf(http.StatusBadRequest, nil, `"sources" is required`)
	}
	srcs := make([]vulndb.Source, len(req.Sources))
	for i, s := range req.Sources {
		if strings.TrimSpace(s) == "" {
			return errorf(http.StatusBadRequest, nil, "source %d is empty", i)
		}
		srcs[i] = vulndb.ParseSource(s)
	}
	ctx := context.WithoutCancel(r.Context())
	actor := principal(ctx).Actor()
	sum, err := h.advisory.Import(ctx, srcs, actor)
	if err != nil {
		return errorf(http.StatusBadGateway, err, "%v", err)
	}
	after, _ := json.Marshal(map[string]any{
		"sources": req.Sources, "changed": sum.Changed, "affected": sum.Affected,
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
