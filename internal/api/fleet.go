package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/respond"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// ResponseStore lists the runtime responses.
type ResponseStore interface {
	ResponsesPage(ctx context.Context, namespace string, after int64, limit int) ([]store.Response, error)
}

// UseFleet gives the API the server's running inventory, which agent
// heartbeats and events feed and the runtime routes answer from, and
// wake, called when a respond job was queued (nil: none).
func (h *Handler) UseFleet(x *fleet.Index, wake func()) {
	h.fleet, h.wakeRespond = x, wake
}

// runningFleet is the index, an empty one when the server gave none.
func (h *Handler) runningFleet() *fleet.Index {
	h.fleetOnce.Do(func() {
		if h.fleet == nil {
			h.fleet = fleet.New(nil, slog.New(slog.DiscardHandler))
		}
	})
	return h.fleet
}

// runningVulnerability serves GET /api/v1/vulnerabilities/{id}/running:
// the running pods on which nodes run a digest the advisory affects, and
// the nodes whose own packages it affects, from memory.
func (h *Handler) runningVulnerability(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == "" || len(id) > 256 {
		return errorf(http.StatusBadRequest, nil, "advisory id: 1 to 256 characters")
	}
	writeJSON(w, http.StatusOK, h.runningFleet().Running(id))
	return nil
}

type offsetPos struct {
	Offset int `json:"o"`
}

// listWorkloads serves GET /api/v1/runtime/workloads: the running
// containers the agents report, filtered, paged; ?endOfLife=true lists
// the workloads of end-of-life applications (violations).
func (h *Handler) listWorkloads(w http.ResponseWriter, r *http.Request) error {
	var pos offsetPos
	limit, _, err := pageParams(r, &pos)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := fleet.Filter{Node: q.Get("node"), Image: q.Get("digest"), PodNamespace: q.Get("namespace"), Application: q.Get("application")}
	if s := q.Get("endOfLife"); s != "" {
		if f.EndOfLife, err = strconv.ParseBool(s); err != nil {
			return errorf(http.StatusBadRequest, err, "endOfLife %q: want true or false", s)
		}
	}
	all := h.runningFleet().Workloads(f)
	if pos.Offset < 0 || pos.Offset > len(all) {
		pos.Offset = len(all)
	}
	page := all[pos.Offset:]
	out := map[string]any{"total": len(all)}
	if len(page) > limit {
		page = page[:limit]
		out["next"] = cursor(offsetPos{Offset: pos.Offset + limit})
	}
	out["workloads"] = page
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listFleetNodes serves GET /api/v1/runtime/nodes[?region=&state=]: the
// nodes of the running inventory (kernel, region, enforcement state, last
// heartbeat, containers, host packages and the advisories affecting them).
func (h *Handler) listFleetNodes(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	region, state := q.Get("region"), q.Get("state")
	out := []fleet.Node{}
	for _, n := range h.runningFleet().Nodes() {
		if (region == "" || n.Region == region) && (state == "" || n.State == state) {
			out = append(out, n)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
	return nil
}

// listResponses serves GET /api/v1/runtime/responses[?namespace=N],
// newest first, paged.
func (h *Handler) listResponses(w http.ResponseWriter, r *http.Request) error {
	var pos runtimePos
	limit, _, err := pageParams(r, &pos)
	if err != nil {
		return err
	}
	rs, err := h.store.ResponsesPage(r.Context(), r.URL.Query().Get("namespace"), pos.ID, limit+1)
	if err != nil {
		return err
	}
	out := map[string]any{"responses": rs}
	if len(rs) > limit {
		rs = rs[:limit]
		out["responses"], out["next"] = rs, cursor(runtimePos{ID: rs[limit-1].ID})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// reasonLearning is the reason of the events a learning window reports
// (bulwark-agent's ReasonLearning; the API does not import the agent).
const reasonLearning = "learning"

// queueDriftResponses queues, in the transaction that stores the events,
// one respond job per container that drifted in added: the response
// policy answers it (respond.Worker), and a crash loses none.
func queueDriftResponses(ctx context.Context, tx *store.Store, added []store.RuntimeEvent) error {
	seen := map[string]bool{}
	for _, e := range added {
		if e.Reason == reasonLearning {
			continue // an exec a learning window allowed and added: not drift to answer
		}
		k := e.Node + "/" + e.Container
		if seen[k] {
			continue
		}
		seen[k] = true
		reason := fmt.Sprintf("%s exec of %s (%s)", e.Verdict, e.Path, e.Reason)
		j := respond.Job{Trigger: respond.TriggerDrift, Event: "runtime-" + strconv.FormatInt(e.ID, 10), Node: e.Node,
			Container: e.Container, Digest: e.Image, Reason: reason, Time: e.Time}
		if err := respond.Enqueue(ctx, tx, j); err != nil {
			return err
		}
	}
	return nil
}
