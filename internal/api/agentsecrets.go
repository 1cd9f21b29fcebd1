package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/secretstore"
)

// ContainerReleaser releases secrets to a node's agent for a container
// (secretstore.Service).
type ContainerReleaser interface {
	ReleaseToContainer(ctx context.Context, actor, node, container, name string) (secretstore.Released, error)
}

// agentSecrets is POST /api/v1/agent/secrets: an agent asks for the
// secrets a container wants; each is released or refused on what the
// server knows of that container, and audited either way.
func (h *Handler) agentSecrets(w http.ResponseWriter, r *http.Request) error {
	var req agentproto.SecretsRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if err := h.nodeBound(r.Context(), req.Node); err != nil {
		return err
	}
	s, err := h.secretStore()
	if err != nil {
		return err
	}
	rel, ok := s.(ContainerReleaser)
	if !ok {
		return errorf(http.StatusServiceUnavailable, nil, "this secret store cannot deliver through agents")
	}
	out := agentproto.SecretsResponse{Secrets: []agentproto.DeliveredSecret{}}
	for _, name := range req.Names {
		d := agentproto.DeliveredSecret{Name: name}
		if err := secretstore.ValidName(name); err != nil {
			d.Refused = err.Error()
			out.Secrets = append(out.Secrets, d)
			continue
		}
		got, err := rel.ReleaseToContainer(r.Context(), principal(r.Context()).Actor(), req.Node, req.Container, name)
		var denied *secretstore.Denied
		switch {
		case errors.As(err, &denied):
			d.Refused = denied.Reason
		case errors.Is(err, secretstore.ErrUnknown):
			d.Refused = "no such secret"
		case err != nil:
			return err
		default:
			d.Version, d.Kind, d.Data, d.File = got.Version, got.Kind, got.Value.Data, got.Value.File
		}
		out.Secrets = append(out.Secrets, d)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}
