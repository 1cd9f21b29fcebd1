package console

import (
	"context"
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// RuntimeStore is what the runtime page reads from the store: the drift
// events and the responses.
type RuntimeStore interface {
	RuntimeEventsPage(ctx context.Context, f store.RuntimeFilter, after int64, limit int) ([]store.RuntimeEvent, error)
	ResponsesPage(ctx context.Context, namespace string, after int64, limit int) ([]store.Response, error)
}

// runtimeRows bounds each list of the runtime page.
const runtimeRows = 200

type runtimePage struct {
	Nodes     []fleet.Node
	Workloads []fleet.Workload
	EndOfLife []fleet.Workload
	Drift     []store.RuntimeEvent
	Responses []store.Response
	More      bool // more workloads than shown
}

// runtime is the nodes, running workloads (end-of-life ones apart),
// recent drift and the responses taken, from the running inventory
// (Options.Running) and the store.
func (c *console) runtime(r *http.Request) (any, error) {
	ctx := r.Context()
	var p runtimePage
	if x := c.opts.Running; x != nil {
		p.Nodes = x.Nodes()
		p.Workloads = x.Workloads(fleet.Filter{})
		p.EndOfLife = x.Workloads(fleet.Filter{EndOfLife: true})
		if len(p.Workloads) > runtimeRows {
			p.Workloads, p.More = p.Workloads[:runtimeRows], true
		}
	}
	var err error
	if p.Drift, err = c.st.RuntimeEventsPage(ctx, store.RuntimeFilter{}, 0, runtimeRows/4); err != nil {
		return nil, err
	}
	if p.Responses, err = c.st.ResponsesPage(ctx, "", 0, runtimeRows/4); err != nil {
		return nil, err
	}
	return p, nil
}
