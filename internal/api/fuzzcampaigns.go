package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/fuzzcampaign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// FuzzCampaignStore is what the fuzz campaign routes need.
type FuzzCampaignStore interface {
	PutAPIRegistration(ctx context.Context, r store.APIRegistration) (store.APIRegistration, error)
	APIRegistration(ctx context.Context, application string) (store.APIRegistration, error)
	DeleteAPIRegistration(ctx context.Context, application string) error
	FuzzCampaign(ctx context.Context, application string, id int64) (store.FuzzCampaign, error)
	FuzzCampaigns(ctx context.Context, application string, limit int) ([]store.FuzzCampaign, error)
}

// maxCampaignsListed bounds GET .../fuzz-campaigns.
const maxCampaignsListed = 100

// APIRegistrationRequest is the body of PUT
// /api/v1/applications/{name}/api. AuthValue is write-only: sealed, never
// shown again.
type APIRegistrationRequest struct {
	OpenAPI      string   `json:"openapi"`
	Target       string   `json:"target"`
	AllowedHosts []string `json:"allowedHosts"`
	AuthHeader   string   `json:"authHeader"`
	AuthValue    string   `json:"authValue"`
}

// APIRegistrationView is a registration as the API shows it.
type APIRegistrationView struct {
	store.APIRegistration
	HasCredential bool `json:"hasCredential"`
}

func registrationView(r store.APIRegistration) APIRegistrationView {
	return APIRegistrationView{APIRegistration: r, HasCredential: len(r.AuthSealed) > 0}
}

// application404 reads the application of the request's path: a 404
// *Error when there is none.
func (h *Handler) application404(ctx context.Context, name string) (store.Application, error) {
	a, err := h.store.Application(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return a, errorf(http.StatusNotFound, err, "application %q not found", name)
	}
	return a, err
}

// putAPIRegistration is PUT /api/v1/applications/{name}/api: 200,
// audited as application.api.put (without the credential).
func (h *Handler) putAPIRegistration(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	var req APIRegistrationRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, err := h.application404(ctx, name); err != nil {
		return err
	}
	hosts, err := fuzzcampaign.CheckRegistration(req.OpenAPI, req.Target, req.AllowedHosts)
	if err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	reg := store.APIRegistration{Application: name, OpenAPI: req.OpenAPI, Target: req.Target, AllowedHosts: hosts}
	switch {
	case (req.AuthHeader == "") != (req.AuthValue == ""):
		return errorf(http.StatusBadRequest, nil, "authHeader and authValue go together")
	case req.AuthHeader != "":
		if !validHeaderName(req.AuthHeader) || strings.ContainsAny(req.AuthValue, "\r\n\x00") || len(req.AuthValue) > 8192 {
			return errorf(http.StatusBadRequest, nil, "authHeader must be a header name and authValue a header value of at most 8192 bytes")
		}
		if h.sealKey == nil {
			return errorf(http.StatusServiceUnavailable, nil, "the server has no secret key to seal the credential with")
		}
		reg.AuthHeader = http.CanonicalHeaderKey(req.AuthHeader)
		if reg.AuthSealed, err = h.sealKey.Seal([]byte(req.AuthValue), fuzzcampaign.CredentialContext(name)); err != nil {
			return err
		}
	}
	var stored store.APIRegistration
	err = h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		var err error
		if stored, err = tx.PutAPIRegistration(ctx, reg); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(registrationView(stored))
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "application.api.put", Object: "application:" + name, After: after}}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "application %q not found", name)
	}
	if err != nil {
		return err
	}
	h.log.Info("application API registered", "application", name, "target", reg.Target, "actor", principal(ctx).Actor())
	writeJSON(w, http.StatusOK, registrationView(stored))
	return nil
}

func (h *Handler) getAPIRegistration(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	reg, err := h.store.APIRegistration(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "application %q has no registered API", name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, registrationView(reg))
	return nil
}

// deleteAPIRegistration is DELETE /api/v1/applications/{name}/api: 204,
// audited as application.api.delete.
func (h *Handler) deleteAPIRegistration(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	err := h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		old, err := tx.APIRegistration(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := tx.DeleteAPIRegistration(ctx, name); err != nil {
			return nil, err
		}
		before, _ := json.Marshal(registrationView(old))
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "application.api.delete", Object: "application:" + name, Before: before}}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "application %q has no registered API", name)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createFuzzCampaign is POST /api/v1/applications/{name}/fuzz-campaigns:
// the campaign is stored and its job queued in one transaction with the
// fuzz.campaign.request audit entry; 202 with Location.
func (h *Handler) createFuzzCampaign(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	var opts fuzzcampaign.Options
	if err := decode(r, &opts); err != nil {
		return err
	}
	if err := opts.Fill(fuzzcampaign.Limits{}); err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if _, err := h.application404(ctx, name); err != nil {
		return err
	}
	if _, err := h.store.APIRegistration(ctx, name); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusConflict, err, "application %q has no registered API (PUT /api/v1/applications/%s/api first)", name, name)
	} else if err != nil {
		return err
	}
	optJSON, _ := json.Marshal(opts)
	var c store.FuzzCampaign
	err := h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		var err error
		if c, err = tx.CreateFuzzCampaign(ctx, name, principal(ctx).Actor(), optJSON); err != nil {
			return nil, err
		}
		payload, _ := json.Marshal(fuzzcampaign.Payload{Campaign: c.ID})
		if _, err := tx.EnqueueJob(ctx, fuzzcampaign.JobKind, payload, time.Time{}); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(c)
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "fuzz.campaign.request",
			Object: "application:" + name, After: after}}, nil
	})
	if errors.Is(err, store.ErrCampaignActive) {
		return errorf(http.StatusConflict, err, "application %q has a fuzz campaign queued or running; wait for it to end", name)
	}
	if err != nil {
		return err
	}
	h.log.Info("fuzz campaign queued", "application", name, "campaign", c.ID, "maxRequests", opts.MaxRequests, "actor", principal(ctx).Actor())
	w.Header().Set("Location", "/api/v1/applications/"+name+"/fuzz-campaigns/"+strconv.FormatInt(c.ID, 10))
	writeJSON(w, http.StatusAccepted, c)
	return nil
}

func (h *Handler) listFuzzCampaigns(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := h.application404(r.Context(), name); err != nil {
		return err
	}
	cs, err := h.store.FuzzCampaigns(r.Context(), name, maxCampaignsListed)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": cs})
	return nil
}

func (h *Handler) getFuzzCampaign(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return errorf(http.StatusBadRequest, err, "campaign id %q is not a positive number", r.PathValue("id"))
	}
	c, err := h.store.FuzzCampaign(r.Context(), name, id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "application %q has no fuzz campaign %d", name, id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// validHeaderName: an HTTP token (RFC 9110), at most 100 bytes.
func validHeaderName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
