package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/instance"
)

// instanceRetirer is the optional capability of Instances that retires
// one (an *instance.Tracker).
type instanceRetirer interface {
	Retire(ctx context.Context, actor, id string) (instance.Instance, error)
}

// retireInstance serves DELETE /api/v1/instances/{id} (admin): the
// instance is forgotten, audited with the status it had. Admin, not
// operator: retiring a revoked instance can let its workload's other
// instances on the node vouch for its identity again.
func (h *Handler) retireInstance(w http.ResponseWriter, r *http.Request) error {
	t, err := h.tracker()
	if err != nil {
		return err
	}
	rt, ok := t.(instanceRetirer)
	if !ok {
		return errorf(http.StatusNotFound, nil, "this server cannot retire instances")
	}
	in, err := rt.Retire(r.Context(), principal(r.Context()).Actor(), r.PathValue("id"))
	if errors.Is(err, instance.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "%v", err)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}
