package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/governance"
)

// Governance is what the governance routes need (governance.Service).
type Governance interface {
	Catalogue() *governance.Catalogue
	Record(ctx context.Context, actor string, b governance.FlowBatch) (governance.Recorded, error)
	Report(ctx context.Context, regulation string) (governance.Report, error)
}

// UseGovernance serves the governance routes from g; without it they
// answer 503.
func (h *Handler) UseGovernance(g Governance) { h.governance = g }

// maxFlowBody bounds a batch of flows.
const maxFlowBody = 4 << 20

func (h *Handler) governed() (Governance, error) {
	if h.governance == nil {
		return nil, errorf(http.StatusServiceUnavailable, nil, "data governance is not configured on this server")
	}
	return h.governance, nil
}

func (h *Handler) governanceCatalogue(w http.ResponseWriter, r *http.Request) error {
	g, err := h.governed()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g.Catalogue())
	return nil
}

// recordFlows is POST /api/v1/governance/flows: a node's observed
// connections; audited per batch, each new violation alerted.
func (h *Handler) recordFlows(w http.ResponseWriter, r *http.Request) error {
	var b governance.FlowBatch
	if err := decodeBounded(r, &b, maxFlowBody); err != nil {
		return err
	}
	if err := h.nodeBound(r.Context(), b.Node); err != nil {
		return err
	}
	g, err := h.governed()
	if err != nil {
		return err
	}
	got, err := g.Record(r.Context(), principal(r.Context()).Actor(), b)
	if errors.Is(err, governance.ErrInvalid) {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, got)
	return nil
}

// governanceReport is GET /api/v1/governance/report[?regulation=][&format=json|csv].
func (h *Handler) governanceReport(w http.ResponseWriter, r *http.Request) error {
	g, err := h.governed()
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		return errorf(http.StatusBadRequest, nil, "format %q: want json or csv", format)
	}
	rep, err := g.Report(r.Context(), r.URL.Query().Get("regulation"))
	if errors.Is(err, governance.ErrInvalid) {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if err != nil {
		return err
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv")
		return rep.Render(w, "csv")
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
