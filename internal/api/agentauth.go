package api

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/nodeauth"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// AgentAuthenticator authenticates an agent by its pod's projected
// service account token (*nodeauth.Reviewer): a *nodeauth.RefusedError
// is 401, a *nodeauth.UnavailableError 503.
type AgentAuthenticator interface {
	Authenticate(ctx context.Context, token, source string) (nodeauth.Agent, error)
}

// UseAgentAuth accepts agents' service account tokens besides API tokens:
// a bearer token that is not a bwk_ API token goes to a. Such a caller is
// an operator bound to its token's node, exactly as a node:NAME token is
// (nodebound.go): the agent routes only, its own node only. Call it
// before serving.
func (h *Handler) UseAgentAuth(a AgentAuthenticator) {
	h.agents = a
	if c, ok := a.(interface{ Counts() nodeauth.Counts }); ok {
		h.metrics.agentTokens = c.Counts
	}
}

// authorizeAgent is authorize for a service account token.
func (h *Handler) authorizeAgent(w http.ResponseWriter, r *http.Request, role, token string, next handlerFunc) error {
	a, err := h.agents.Authenticate(r.Context(), token, clientAddr(r))
	var refused *nodeauth.RefusedError
	var unavailable *nodeauth.UnavailableError
	switch {
	case errors.As(err, &refused):
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark", error="invalid_token"`)
		return errorf(http.StatusUnauthorized, err, "invalid token: neither an API token nor an agent's service account token the cluster vouches for (%s)", refused.Reason)
	case errors.As(err, &unavailable):
		w.Header().Set("Retry-After", "5")
		return errorf(http.StatusServiceUnavailable, err, "the service account token cannot be checked now: the cluster does not answer the server")
	case err != nil:
		return err
	}
	if roleRank[store.RoleOperator] < roleRank[role] {
		return errorf(http.StatusForbidden, nil, "an agent's service account token (node %q) may call the agent routes only", a.Node)
	}
	ctx := context.WithValue(r.Context(), principalKey{}, Principal{Role: store.RoleOperator, Agent: &a})
	return next(w, r.WithContext(ctx))
}

// clientAddr is the request's client address without its port: the
// source whose reviews in flight nodeauth bounds.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
