package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/instance"
)

// Instances is what the confidential-instance routes need (an
// *instance.Tracker).
type Instances interface {
	Challenge(ctx context.Context, actor, id string) (instance.Challenge, error)
	Register(ctx context.Context, actor string, reg instance.Registration) (instance.Instance, error)
	List(workload string) []instance.Instance
	Get(id string) (instance.Instance, bool)
}

// UseInstances gives the API the server's confidential-instance tracker;
// without it the instance routes answer 404.
func (h *Handler) UseInstances(i Instances) { h.instances = i }

// maxEvidenceBody bounds a registration: a TDX quote with its PCK chain
// is about 5 KB, an SGX one alike, base64 in JSON a third more.
const maxEvidenceBody = 256 << 10

func (h *Handler) tracker() (Instances, error) {
	if h.instances == nil {
		return nil, errorf(http.StatusNotFound, nil, "confidential instances are not enabled on this server")
	}
	return h.instances, nil
}

// instanceChallenge serves POST /api/v1/instances/{id}/challenge: a fresh
// single-use nonce for the instance's next evidence.
func (h *Handler) instanceChallenge(w http.ResponseWriter, r *http.Request) error {
	t, err := h.tracker()
	if err != nil {
		return err
	}
	c, err := t.Challenge(r.Context(), principal(r.Context()).Actor(), r.PathValue("id"))
	if errors.Is(err, instance.ErrInput) {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, c)
	return nil
}

// registerInstance serves POST /api/v1/instances: evidence verified and
// the instance recorded as verified or failed (200 either way, the status
// and reason in the body); a nonce replayed, expired or issued to another
// instance, or an instance ID another workload holds, is 409 and records
// nothing.
func (h *Handler) registerInstance(w http.ResponseWriter, r *http.Request) error {
	t, err := h.tracker()
	if err != nil {
		return err
	}
	var reg instance.Registration
	if err := decodeBounded(r, &reg, maxEvidenceBody); err != nil {
		return err
	}
	if err := h.nodeBound(r.Context(), reg.Node); err != nil {
		return err
	}
	in, err := t.Register(r.Context(), principal(r.Context()).Actor(), reg)
	switch {
	case errors.Is(err, instance.ErrInput):
		return errorf(http.StatusBadRequest, err, "%v", err)
	case errors.Is(err, instance.ErrConflict), attest.ReasonOf(err) == attest.ReasonReplay:
		return errorf(http.StatusConflict, err, "%v", err)
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

func (h *Handler) listInstances(w http.ResponseWriter, r *http.Request) error {
	t, err := h.tracker()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"instances": t.List(r.URL.Query().Get("workload"))})
	return nil
}

func (h *Handler) getInstance(w http.ResponseWriter, r *http.Request) error {
	t, err := h.tracker()
	if err != nil {
		return err
	}
	in, ok := t.Get(r.PathValue("id"))
	if !ok {
		return errorf(http.StatusNotFound, nil, "instance %q not found", r.PathValue("id"))
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}
