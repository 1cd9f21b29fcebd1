package api

import (
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/report"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// UseAdvisorySource gives the API the advisory database that
// GET /api/v1/images/{digest}/findings matches stored inventories against.
func (h *Handler) UseAdvisorySource(src match.Source) { h.advisorySource = src }

// findings serves GET /api/v1/images/{digest}/findings: the stored
// inventory matched now against the current advisory database, as
// `bulwark scan --format json` reports it. A finding is a pure function of
// the two, recomputed in milliseconds; nothing is re-pulled and nothing
// stored.
func (h *Handler) findings(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if h.advisorySource == nil {
		return errorf(http.StatusServiceUnavailable, nil, "this server has no advisory database")
	}
	digest := r.PathValue("digest")
	inv, err := h.store.Inventory(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "no inventory stored for %s", digest)
	}
	if err != nil {
		return err
	}
	res, err := match.Match(ctx, h.advisorySource, inv)
	if err != nil {
		return err
	}
	rep := report.New(inv, res, report.Database{})
	writeJSON(w, http.StatusOK, rep)
	return nil
}
