package api

import "net/http"

// auditPos is the audit listing's cursor: the last sequence number served.
type auditPos struct {
	Seq int64 `json:"s"`
}

// listAudit serves GET /api/v1/audit: the audit log oldest first, paged.
func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	var pos auditPos
	limit, _, err := pageParams(r, &pos)
	if err != nil {
		return err
	}
	recs, err := h.store.AuditPage(r.Context(), pos.Seq, limit+1)
	if err != nil {
		return err
	}
	out := map[string]any{"entries": recs}
	if len(recs) > limit {
		recs = recs[:limit]
		out["entries"], out["next"] = recs, cursor(auditPos{Seq: recs[limit-1].Seq})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
