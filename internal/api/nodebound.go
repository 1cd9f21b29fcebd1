package api

import (
	"context"
	"net/http"
	"strings"
)

// NodeTokenPrefix names an agent token bound to one node: a token called
// "node:NAME" may speak for node NAME only. Every agent route that names
// a node (identities, secrets, heartbeats, runtime events, host
// inventory, flows) refuses such a token's request for another node with
// 403, before it changes or releases anything.
const NodeTokenPrefix = "node:"

// tokenNamer reads a token's name (store.Store).
type tokenNamer interface {
	TokenName(ctx context.Context, id int64) (string, error)
}

// nodeBound refuses a request of a node-bound token for another node.
// Token names never change, so they are cached per token id.
func (h *Handler) nodeBound(ctx context.Context, node string) error {
	tn, ok := h.store.(tokenNamer)
	if !ok {
		return nil
	}
	id := principal(ctx).TokenID
	name, cached := h.tokenNames.Load(id)
	if !cached {
		n, err := tn.TokenName(ctx, id)
		if err != nil {
			return err
		}
		name, _ = h.tokenNames.LoadOrStore(id, n)
	}
	if bound, ok := strings.CutPrefix(name.(string), NodeTokenPrefix); ok && bound != node {
		return errorf(http.StatusForbidden, nil, "this token is bound to node %q, not %q", bound, node)
	}
	return nil
}
