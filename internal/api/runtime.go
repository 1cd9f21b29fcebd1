package api

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// RuntimeStore is what the runtime routes need from the store.
type RuntimeStore interface {
	RuntimeEventsPage(ctx context.Context, f store.RuntimeFilter, after int64, limit int) ([]store.RuntimeEvent, error)
	NodesPage(ctx context.Context, after string, limit int) ([]store.Node, error)
}

// Body bounds of the agent routes: a full batch (agentproto.MaxEvents
// events with paths and errors) and a heartbeat of a crowded node.
const (
	maxEventsBody    = 4 << 20
	maxHeartbeatBody = 4 << 20
)

// decodeBounded is decode with its own bound.
func decodeBounded(r *http.Request, v any, limit int64) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return errorf(http.StatusBadRequest, err, "reading the request body: %v", err)
	}
	if int64(len(b)) > limit {
		return errorf(http.StatusRequestEntityTooLarge, nil, "request body larger than %d bytes", limit)
	}
	return decodeObject(b, v, true)
}

// EventsAccepted is the answer to POST /api/v1/agent/events: the batch is
// stored (Stored new events, Duplicates sent before) up to Acked.
type EventsAccepted struct {
	Acked      uint64 `json:"acked"`
	Stored     int    `json:"stored"`
	Duplicates int    `json:"duplicates"`
}

// agentEvents stores a batch of runtime events, once per (node, spool,
// seq), and in the same transaction queues a runtime.drift notification
// per container, content and verdict of the new events and audits the
// batch.
func (h *Handler) agentEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var b agentproto.Batch
	if err := decodeBounded(r, &b, maxEventsBody); err != nil {
		return err
	}
	if err := b.Validate(); err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if err := h.nodeBound(ctx, b.Node); err != nil {
		return err
	}
	evs := make([]store.RuntimeEvent, 0, len(b.Events))
	for _, e := range b.Events {
		if e.Seq > math.MaxInt64 {
			return errorf(http.StatusBadRequest, nil, "seq %d is out of range", e.Seq)
		}
		evs = append(evs, store.RuntimeEvent{Node: b.Node, Spool: b.Spool, Seq: int64(e.Seq), Time: e.Time.UTC(),
			Verdict: e.Verdict, Reason: e.Reason, PID: int64(e.PID), Path: e.Path, Content: e.Digest,
			Container: e.Container, Namespace: e.Namespace, Image: e.Image, Error: e.Error, Tree: e.Tree})
	}
	var added []store.RuntimeEvent
	err := h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		var err error
		if added, err = tx.AddRuntimeEvents(ctx, evs); err != nil || len(added) == 0 {
			return nil, err
		}
		for _, ev := range driftEvents(added) {
			if _, err := notify.Publish(ctx, tx, ev); err != nil {
				return nil, err
			}
		}
		if err := queueDriftResponses(ctx, tx, added); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(map[string]any{"spool": b.Spool, "stored": len(added), "firstSeq": added[0].Seq,
			"lastSeq": added[len(added)-1].Seq, "dropped": b.Dropped})
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "runtime.events", Object: "node:" + b.Node, After: after}}, nil
	})
	if err != nil {
		return err
	}
	for _, e := range added {
		h.runningFleet().Drifted(e.Node, e.Container, e.Time)
	}
	if len(added) > 0 && h.wakeRespond != nil {
		h.wakeRespond()
	}
	if len(added) > 0 {
		h.log.Info("runtime events stored", "node", b.Node, "spool", b.Spool, "stored", len(added), "duplicates", len(evs)-len(added))
	}
	writeJSON(w, http.StatusOK, EventsAccepted{Acked: b.Events[len(b.Events)-1].Seq, Stored: len(added), Duplicates: len(evs) - len(added)})
	return nil
}

// driftEvents groups new events by container, content and verdict: one
// notification each, in the order of their first event.
func driftEvents(added []store.RuntimeEvent) []notify.Event {
	type key struct{ container, content, verdict string }
	idx := map[key]int{}
	var ds []notify.Drift
	var ids []int64
	for _, e := range added {
		k := key{e.Container, e.Content, e.Verdict}
		if i, ok := idx[k]; ok {
			ds[i].Count++
			continue
		}
		idx[k] = len(ds)
		ds = append(ds, notify.Drift{Node: e.Node, Container: e.Container, Namespace: e.Namespace, Image: e.Image,
			Verdict: e.Verdict, Reason: e.Reason, Path: e.Path, Content: e.Content, Count: 1, FirstSeq: e.Seq, Time: e.Time, Tree: e.Tree})
		ids = append(ids, e.ID)
	}
	out := make([]notify.Event, len(ds))
	for i, d := range ds {
		out[i] = notify.Drifted(d)
		out[i].ID = "runtime-" + strconv.FormatInt(ids[i], 10) // the first event's row: stable
	}
	return out
}

// agentHeartbeat records a node's state. A node seen for the first time,
// or whose mode or enforcement state changed, is audited; a heartbeat that
// only refreshes figures is not.
func (h *Handler) agentHeartbeat(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var hb agentproto.Heartbeat
	if err := decodeBounded(r, &hb, maxHeartbeatBody); err != nil {
		return err
	}
	if err := hb.Validate(); err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	if err := h.nodeBound(ctx, hb.Node); err != nil {
		return err
	}
	cs, _ := json.Marshal(nonNil(hb.Containers))
	n := store.Node{Name: hb.Node, Mode: hb.Mode, State: hb.State, Reason: hb.Reason, Containers: string(cs),
		SpoolEvents: clampInt64(hb.SpoolEvents), SpoolBytes: hb.SpoolBytes, Dropped: clampInt64(hb.Dropped), Version: hb.Version}
	err := h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		prev, err := tx.PutNode(ctx, n)
		if err != nil {
			return nil, err
		}
		action := ""
		var before []byte
		switch {
		case prev == nil:
			action = "node.register"
		case prev.State != n.State || prev.Mode != n.Mode || prev.Reason != n.Reason:
			action = "node.state"
			before, _ = json.Marshal(map[string]string{"mode": prev.Mode, "state": prev.State, "reason": prev.Reason})
		default:
			return nil, nil
		}
		after, _ := json.Marshal(map[string]string{"mode": n.Mode, "state": n.State, "reason": n.Reason})
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: action, Object: "node:" + n.Name, Before: before, After: after}}, nil
	})
	if err != nil {
		return err
	}
	h.runningFleet().Observe(hb, time.Now())
	writeJSON(w, http.StatusOK, map[string]string{"node": n.Name, "state": n.State})
	return nil
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// runtimePos is the cursor of GET /api/v1/runtime/events.
type runtimePos struct {
	ID int64 `json:"id"`
}

// listRuntimeEvents serves GET /api/v1/runtime/events[?digest=&node=&container=],
// newest first, paged.
func (h *Handler) listRuntimeEvents(w http.ResponseWriter, r *http.Request) error {
	var pos runtimePos
	limit, _, err := pageParams(r, &pos)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.RuntimeFilter{Image: q.Get("digest"), Node: q.Get("node"), Container: q.Get("container")}
	evs, err := h.store.RuntimeEventsPage(r.Context(), f, pos.ID, limit+1)
	if err != nil {
		return err
	}
	out := map[string]any{"events": evs}
	if len(evs) > limit {
		evs = evs[:limit]
		out["events"], out["next"] = evs, cursor(runtimePos{ID: evs[limit-1].ID})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// NodeView is a node as GET /api/v1/nodes shows it.
type NodeView struct {
	store.Node
	Containers json.RawMessage `json:"containers"`
}

type nodePos struct {
	Name string `json:"name"`
}

// listNodes serves GET /api/v1/nodes, by name, paged.
func (h *Handler) listNodes(w http.ResponseWriter, r *http.Request) error {
	var pos nodePos
	limit, _, err := pageParams(r, &pos)
	if err != nil {
		return err
	}
	ns, err := h.store.NodesPage(r.Context(), pos.Name, limit+1)
	if err != nil {
		return err
	}
	var next string
	if len(ns) > limit {
		ns = ns[:limit]
		next = cursor(nodePos{Name: ns[limit-1].Name})
	}
	views := make([]NodeView, 0, len(ns))
	for _, n := range ns {
		v := NodeView{Node: n, Containers: json.RawMessage(n.Containers)}
		if !json.Valid(v.Containers) {
			v.Containers = json.RawMessage("[]")
		}
		views = append(views, v)
	}
	out := map[string]any{"nodes": views}
	if next != "" {
		out["next"] = next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
