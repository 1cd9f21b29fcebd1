package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/store"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// UseAdvisoryDB gives the API the server's advisory database, which
// POST /api/v1/advisories/import writes and re-evaluation matches against.
// Call it before serving; without it that route answers 503.
func (h *Handler) UseAdvisoryDB(db *vulndb.DB) { h.advisory = db }

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

// importAdvisories imports the sources into the advisory database, one
// after the other, then re-evaluates the stored images against the records
// that changed, revoking the certifications that no longer hold. It runs
// synchronously in the request (one at a time): an import of a local
// directory takes milliseconds, a full OSV export seconds to a minute.
func (h *Handler) importAdvisories(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
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

	// A client that goes away does not stop the work: an import committed
	// but not re-evaluated would lose its revocations (the next import of
	// the same data finds no changed record).
	ctx = context.WithoutCancel(ctx)
	h.importMu.Lock()
	defer h.importMu.Unlock()
	start := time.Now()
	sum := AdvisoryImportSummary{Imports: []vulndb.Result{}, Revocations: []reeval.Revocation{}}
	var changed []*osv.Record
	actor := principal(ctx).Actor()
	for _, src := range srcs {
		res, err := h.advisory.Import(ctx, src)
		if err != nil {
			// Sources imported before this one stay imported; re-evaluate
			// what they changed before answering, so no revocation waits
			// for the next import.
			if len(changed) > 0 {
				if _, rerr := h.reevaluate(ctx, actor, changed); rerr != nil {
					err = errors.Join(err, rerr)
				}
			}
			return errorf(http.StatusBadGateway, err, "importing %s: %v", src.Location, err)
		}
		sum.Imports = append(sum.Imports, res)
		changed = append(changed, res.Changed...)
	}
	sum.Changed = len(changed)
	if len(changed) > 0 {
		res, err := h.reevaluate(ctx, actor, changed)
		if err != nil {
			return err
		}
		sum.Affected, sum.Rematched = res.Affected, res.Rematched
		sum.Revocations = nonNil(res.Revocations)
	}
	sum.Duration = time.Since(start)

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

// reevaluate runs re-evaluation over changed and audits every revocation
// (also those written before an error).
func (h *Handler) reevaluate(ctx context.Context, actor string, changed []*osv.Record) (reeval.Result, error) {
	e := &reeval.Engine{Store: h.store, Advisory: h.advisory}
	res, err := e.Reevaluate(ctx, changed)
	for _, rv := range res.Revocations {
		if aerr := auditRevocation(ctx, h.auditor, actor, rv); aerr != nil {
			err = errors.Join(err, aerr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("re-evaluating %d changed advisories: %w", len(changed), err)
	}
	return res, nil
}

// auditRevocation appends certification.revoke for rv. Re-evaluation
// revokes only certified digests, so before is always certified.
func auditRevocation(ctx context.Context, a *Auditor, actor string, rv reeval.Revocation) error {
	before, _ := json.Marshal(map[string]string{"status": store.Certified})
	after, _ := json.Marshal(map[string]any{"status": store.Revoked, "reason": rv.Reason, "time": rv.Time})
	return a.Append(ctx, audit.Entry{
		Actor: actor, Action: "certification.revoke", Object: rv.Digest, Before: before, After: after,
	})
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
	old, err := h.store.Certification(ctx, digest)
	hadOld := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := h.store.SetCertification(ctx, digest, req.Status, req.Reason); err != nil {
		return err
	}
	now, err := h.store.Certification(ctx, digest)
	if err != nil {
		return err
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
	if err := h.auditor.Append(ctx, audit.Entry{
		Actor: principal(ctx).Actor(), Action: action, Object: digest, Before: before, After: after,
	}); err != nil {
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
