package api

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Bounds of the host inventory route: a body of agentproto.MaxPackages
// packages and the running digests, and the nodes remembered.
const (
	maxHostInventoryBody = 16 << 20
	maxHostInventories   = 1 << 16
)

// hostInventories holds the last host inventory of each node, in memory:
// the fleet index (internal/fleet) is what matches them against advisories;
// UseHostInventory hands each one on to it.
type hostInventories struct {
	mu     sync.RWMutex
	byNode map[string]agentproto.HostInventory
	sink   func(agentproto.HostInventory)
}

// UseHostInventory passes every accepted host inventory to fn (the fleet
// index), after it is validated, audited and kept.
func (h *Handler) UseHostInventory(fn func(agentproto.HostInventory)) {
	h.hosts.mu.Lock()
	h.hosts.sink = fn
	h.hosts.mu.Unlock()
}

// HostInventory returns the last host inventory node sent.
func (h *Handler) HostInventory(node string) (agentproto.HostInventory, bool) {
	h.hosts.mu.RLock()
	defer h.hosts.mu.RUnlock()
	hi, ok := h.hosts.byNode[node]
	return hi, ok
}

// agentHostInventory accepts a node's own inventory (its packages, which
// digests run where): validated strictly, audited (node.host-inventory,
// with counts, not the list), kept per node in memory and handed to the
// fleet index.
func (h *Handler) agentHostInventory(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var hi agentproto.HostInventory
	if err := decodeBounded(r, &hi, maxHostInventoryBody); err != nil {
		return err
	}
	if err := hi.Validate(); err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if err := h.nodeBound(ctx, hi.Node); err != nil {
		return err
	}
	h.hosts.mu.RLock()
	_, known := h.hosts.byNode[hi.Node]
	full := len(h.hosts.byNode) >= maxHostInventories
	h.hosts.mu.RUnlock()
	if !known && full {
		return errorf(http.StatusServiceUnavailable, nil, "host inventories of %d nodes are held; no room for node %q", maxHostInventories, hi.Node)
	}
	containers := 0
	for _, ids := range hi.Running {
		containers += len(ids)
	}
	distro := ""
	if hi.Distro != nil {
		distro = hi.Distro.ID + " " + hi.Distro.VersionID
	}
	err := h.auditor.Do(ctx, func(*store.Store) ([]audit.Entry, error) {
		after, _ := json.Marshal(map[string]any{"packages": len(hi.Packages), "digests": len(hi.Running), "containers": containers,
			"kernel": hi.Kernel, "distro": distro, "generated": hi.Generated})
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "node.host-inventory", Object: "node:" + hi.Node, After: after}}, nil
	})
	if err != nil {
		return err
	}
	h.hosts.mu.Lock()
	if h.hosts.byNode == nil {
		h.hosts.byNode = map[string]agentproto.HostInventory{}
	}
	h.hosts.byNode[hi.Node] = hi
	sink := h.hosts.sink
	h.hosts.mu.Unlock()
	if sink != nil {
		sink(hi)
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": hi.Node, "packages": len(hi.Packages), "digests": len(hi.Running)})
	return nil
}
