package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// ApplicationStore is what the application routes need.
type ApplicationStore interface {
	PutApplication(ctx context.Context, a store.Application) (store.Application, error)
	Application(ctx context.Context, name string) (store.Application, error)
	ListApplications(ctx context.Context) ([]store.Application, error)
	DeleteApplication(ctx context.Context, name string) error
}

// ApplicationRequest is the body of POST /api/v1/applications and
// PUT /api/v1/applications/{name} (where name may be left out).
type ApplicationRequest struct {
	Name         string            `json:"name"`
	Team         string            `json:"team"`
	Contact      string            `json:"contact"`
	Lifecycle    string            `json:"lifecycle"` // default active
	Repositories []string          `json:"repositories"`
	Labels       map[string]string `json:"labels"`
}

func (req ApplicationRequest) application() store.Application {
	a := store.Application{Name: req.Name, Team: req.Team, Contact: req.Contact, Lifecycle: req.Lifecycle,
		Repositories: req.Repositories, Labels: req.Labels}
	if a.Lifecycle == "" {
		a.Lifecycle = store.LifecycleActive
	}
	return a
}

func (h *Handler) listApplications(w http.ResponseWriter, r *http.Request) error {
	apps, err := h.store.ListApplications(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"applications": nonNil(apps)})
	return nil
}

func (h *Handler) getApplication(w http.ResponseWriter, r *http.Request) error {
	a, err := h.store.Application(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "application %q not found", r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// createApplication is POST /api/v1/applications: 201, or 409 when the
// name is taken (PUT replaces).
func (h *Handler) createApplication(w http.ResponseWriter, r *http.Request) error {
	var req ApplicationRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	_, err := h.store.Application(r.Context(), req.Name)
	switch {
	case err == nil:
		return errorf(http.StatusConflict, nil, "application %q exists (PUT /api/v1/applications/%s replaces it)", req.Name, req.Name)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	return h.putApplication(w, r, req.application(), nil)
}

// replaceApplication is PUT /api/v1/applications/{name}: 200 when it
// replaced one, 201 when it created it.
func (h *Handler) replaceApplication(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var req ApplicationRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name != "" && req.Name != name {
		return errorf(http.StatusBadRequest, nil, "the body names application %q, the path %q", req.Name, name)
	}
	req.Name = name
	old, err := h.store.Application(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h.putApplication(w, r, req.application(), nil)
	case err != nil:
		return err
	}
	return h.putApplication(w, r, req.application(), &old)
}

// putApplication validates and stores a, and audits application.put with
// the application as it was (old, nil when new) and as it is.
func (h *Handler) putApplication(w http.ResponseWriter, r *http.Request, a store.Application, old *store.Application) error {
	ctx := r.Context()
	if err := a.Validate(); err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	stored, err := h.store.PutApplication(ctx, a)
	if err != nil {
		return err
	}
	var before []byte
	if old != nil {
		before, _ = json.Marshal(old)
	}
	after, _ := json.Marshal(stored)
	if err := h.auditor.Append(ctx, audit.Entry{
		Actor: principal(ctx).Actor(), Action: "application.put", Object: "application:" + a.Name,
		Before: before, After: after,
	}); err != nil {
		return err
	}
	h.log.Info("application stored", "application", a.Name, "lifecycle", a.Lifecycle, "actor", principal(ctx).Actor())
	h.runningFleet().Rematch() // owners and lifecycles of the running images
	code := http.StatusCreated
	if old != nil {
		code = http.StatusOK
	}
	writeJSON(w, code, stored)
	return nil
}

// deleteApplication is DELETE /api/v1/applications/{name}: 204, audited
// as application.delete with the application as it was.
func (h *Handler) deleteApplication(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	old, err := h.store.Application(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "application %q not found", name)
	}
	if err != nil {
		return err
	}
	if err := h.store.DeleteApplication(ctx, name); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "application %q not found", name)
	} else if err != nil {
		return err
	}
	before, _ := json.Marshal(old)
	if err := h.auditor.Append(ctx, audit.Entry{
		Actor: principal(ctx).Actor(), Action: "application.delete", Object: "application:" + name, Before: before,
	}); err != nil {
		return err
	}
	h.log.Info("application deleted", "application", name, "actor", principal(ctx).Actor())
	h.runningFleet().Rematch()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
