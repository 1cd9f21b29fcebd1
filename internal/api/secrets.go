package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/secretstore"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// SecretStore is what the secret routes need (secretstore.Service). It
// audits every change itself, without values.
type SecretStore interface {
	Put(ctx context.Context, actor, name string, spec secretstore.Spec, v secretstore.Value) (int64, error)
	Create(ctx context.Context, actor, name string, spec secretstore.Spec, v secretstore.Value) error
	Rotate(ctx context.Context, actor, name string, v secretstore.Value) (int64, error)
	SetPolicy(ctx context.Context, actor, name string, classes []string, p secretstore.Policy) error
	Delete(ctx context.Context, actor, name string) error
	List() []secretstore.Info
	Info(name string) (secretstore.Info, bool)
}

// UseSecrets serves the secret routes from s; without it they answer 503.
func (h *Handler) UseSecrets(s SecretStore) { h.secrets = s }

// maxSecretBody bounds a secret's request: the largest value, base64'd,
// with room for its policy.
const maxSecretBody = secretstore.MaxValue*4/3 + 64<<10

// SecretRequest is the body of POST /api/v1/secrets and
// PUT /api/v1/secrets/{name} (where name may be left out).
type SecretRequest struct {
	Name    string             `json:"name"`
	Kind    string             `json:"kind"` // kv (default) or file
	Data    map[string]string  `json:"data,omitempty"`
	File    []byte             `json:"file,omitempty"` // base64 in JSON
	Classes []string           `json:"classes"`
	Policy  secretstore.Policy `json:"policy"`
}

// SecretValue is the body of POST /api/v1/secrets/{name}/rotate.
type SecretValue struct {
	Data map[string]string `json:"data,omitempty"`
	File []byte            `json:"file,omitempty"`
}

// SecretPolicy is the body of PUT /api/v1/secrets/{name}/policy.
type SecretPolicy struct {
	Classes []string           `json:"classes"`
	Policy  secretstore.Policy `json:"policy"`
}

// SecretWritten is the answer to a write: the metadata, never the value.
type SecretWritten struct {
	secretstore.Info
}

func (h *Handler) secretStore() (SecretStore, error) {
	if h.secrets == nil {
		return nil, errorf(http.StatusServiceUnavailable, nil, "the secret store is not configured on this server")
	}
	return h.secrets, nil
}

// secretErr maps the store's errors; their messages never hold a value.
func secretErr(err error, name string) error {
	switch {
	case errors.Is(err, secretstore.ErrInvalid):
		return errorf(http.StatusBadRequest, err, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, err, "secret %q not found", name)
	case errors.Is(err, store.ErrSecretExists):
		return errorf(http.StatusConflict, err, "secret %q exists (PUT adds a version, POST .../rotate a new value)", name)
	case errors.Is(err, store.ErrVersionConflict):
		return errorf(http.StatusConflict, err, "secret %q changed meanwhile (a concurrent write): try again", name)
	}
	return err
}

func (h *Handler) listSecrets(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": s.List()})
	return nil
}

func (h *Handler) getSecret(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	info, ok := s.Info(name)
	if !ok {
		return errorf(http.StatusNotFound, nil, "secret %q not found", name)
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// createSecret is POST /api/v1/secrets: 201, or 409 when the name is
// taken (PUT adds a version).
func (h *Handler) createSecret(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	var req SecretRequest
	if err := decodeBounded(r, &req, maxSecretBody); err != nil {
		return err
	}
	if req.Kind == "" {
		req.Kind = secretstore.KindKV
	}
	// No look first: the store's insert answers "exists" atomically, so
	// of two concurrent creates (on any replicas) one gets 409.
	err = s.Create(r.Context(), principal(r.Context()).Actor(), req.Name,
		secretstore.Spec{Kind: req.Kind, Classes: req.Classes, Policy: req.Policy},
		secretstore.Value{Data: req.Data, File: req.File})
	if err != nil {
		return secretErr(err, req.Name)
	}
	info, _ := s.Info(req.Name)
	writeJSON(w, http.StatusCreated, info)
	return nil
}

// replaceSecret is PUT /api/v1/secrets/{name}: a new version with the
// body's value, kind, classes and policy (201 when it created the secret).
func (h *Handler) replaceSecret(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	var req SecretRequest
	if err := decodeBounded(r, &req, maxSecretBody); err != nil {
		return err
	}
	name := r.PathValue("name")
	if req.Name != "" && req.Name != name {
		return errorf(http.StatusBadRequest, nil, "the body names secret %q, the path %q", req.Name, name)
	}
	req.Name = name
	return h.putSecret(w, r, s, req)
}

func (h *Handler) putSecret(w http.ResponseWriter, r *http.Request, s SecretStore, req SecretRequest) error {
	if req.Kind == "" {
		req.Kind = secretstore.KindKV
	}
	_, existed := s.Info(req.Name)
	_, err := s.Put(r.Context(), principal(r.Context()).Actor(), req.Name,
		secretstore.Spec{Kind: req.Kind, Classes: req.Classes, Policy: req.Policy},
		secretstore.Value{Data: req.Data, File: req.File})
	if err != nil {
		return secretErr(err, req.Name)
	}
	info, _ := s.Info(req.Name)
	code := http.StatusOK
	if !existed {
		code = http.StatusCreated
	}
	writeJSON(w, code, info)
	return nil
}

func (h *Handler) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	var v SecretValue
	if err := decodeBounded(r, &v, maxSecretBody); err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, err := s.Rotate(r.Context(), principal(r.Context()).Actor(), name, secretstore.Value{Data: v.Data, File: v.File}); err != nil {
		return secretErr(err, name)
	}
	info, _ := s.Info(name)
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (h *Handler) setSecretPolicy(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	var p SecretPolicy
	if err := decode(r, &p); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := s.SetPolicy(r.Context(), principal(r.Context()).Actor(), name, p.Classes, p.Policy); err != nil {
		return secretErr(err, name)
	}
	info, _ := s.Info(name)
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (h *Handler) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := s.Delete(r.Context(), principal(r.Context()).Actor(), name); err != nil {
		return secretErr(err, name)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
