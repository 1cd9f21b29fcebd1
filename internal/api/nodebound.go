package api

import (
	"context"
	"net/http"
	"strings"
)

// NodeTokenPrefix names an agent token bound to one node: a token called
// "node:NAME" may speak for node NAME only, as may an agent's service
// account token for the node of its pod (agentauth.go). Every agent route
// that names a node (identities, secrets, heartbeats, runtime events, host
// inventory, flows) refuses such a token's request for another node with
// 403, before it changes or releases anything.
const NodeTokenPrefix = "node:"

// tokenNamer reads a token's name (store.Store).
type tokenNamer interface {
	TokenName(ctx context.Context, id int64) (string, error)
}

// agentRoutes are the routes an agent calls, the only ones a node-bound
// token may call: a token stolen from a node (or root on it) must not
// read what a viewer or an operator can (every image's inventory and
// config, every node's workloads, the audit of scans) nor start scans,
// test webhooks or open fuzz campaigns. Before this list a node token,
// being an operator token, could: the scoping of the allowlist route was
// moot while GET /api/v1/images/{digest} answered it
// (TestNodeBoundTokenOnlyAgentRoutes).
var agentRoutes = map[string]bool{
	"POST /api/v1/agent/events":             true,
	"POST /api/v1/agent/heartbeat":          true,
	"POST /api/v1/agent/host-inventory":     true,
	"POST /api/v1/agent/secrets":            true,
	"GET /api/v1/agent/allowlists/{digest}": true,
	"POST /api/v1/governance/flows":         true,
	"POST /api/v1/identity/x509":            true,
	"POST /api/v1/identity/jwt":             true,
	"GET /api/v1/identity/changes":          true,
	"POST /api/v1/instances/{id}/challenge": true,
	"POST /api/v1/instances":                true,
}

// nodeScoped refuses a node-bound token on every route but the agent's.
func (h *Handler) nodeScoped(pattern string, next handlerFunc) handlerFunc {
	if agentRoutes[pattern] {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		bound, ok, err := h.boundNode(r.Context())
		if err != nil {
			return err
		}
		if ok {
			return errorf(http.StatusForbidden, nil, "this token is bound to node %q: it may call the agent routes only", bound)
		}
		return next(w, r)
	}
}

// boundNode is the node the caller is bound to: an agent's service
// account token's, or a node:NAME API token's.
func (h *Handler) boundNode(ctx context.Context) (node string, ok bool, err error) {
	if a := principal(ctx).Agent; a != nil {
		return a.Node, true, nil
	}
	name, err := h.tokenName(ctx)
	if err != nil {
		return "", false, err
	}
	node, ok = strings.CutPrefix(name, NodeTokenPrefix)
	return node, ok, nil
}

// tokenName is the caller's token name ("" when the store names none).
// Token names never change, so they are cached per token id.
func (h *Handler) tokenName(ctx context.Context) (string, error) {
	tn, ok := h.store.(tokenNamer)
	if !ok {
		return "", nil
	}
	id := principal(ctx).TokenID
	name, cached := h.tokenNames.Load(id)
	if !cached {
		n, err := tn.TokenName(ctx, id)
		if err != nil {
			return "", err
		}
		name, _ = h.tokenNames.LoadOrStore(id, n)
	}
	return name.(string), nil
}

// nodeBound refuses a request of a node-bound token for another node.
func (h *Handler) nodeBound(ctx context.Context, node string) error {
	bound, ok, err := h.boundNode(ctx)
	if err != nil {
		return err
	}
	if ok && bound != node {
		return errorf(http.StatusForbidden, nil, "this token is bound to node %q, not %q", bound, node)
	}
	return nil
}
