package agent

import (
	"context"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/netflow"
)

// DefaultFlowEvery is how often RunFlows scans the containers' sockets.
const DefaultFlowEvery = 5 * time.Second

// RunFlows reports the watched containers' outbound connections to the
// server (POST /api/v1/governance/flows) through s: every interval it
// scans each container's processes (its cgroup's) with a netflow.Tracker
// and sends what is new. A failed send is retried with the next
// send (at most agentproto.MaxFlows kept); a connection opened and closed
// between two scans is not seen, unless the exec sensor runs
// (--exec-events): then every connect it sees is counted instead of the
// scan (procevents.go).
func (a *Agent) RunFlows(ctx context.Context, s *Sender, node string, every time.Duration) error {
	if every <= 0 {
		every = DefaultFlowEvery
	}
	tr := &netflow.Tracker{}
	a.flowTracker.Store(tr)             // the exec sensor feeds it every connect (procevents.go)
	var pending []agentproto.FlowReport // not yet accepted by the server
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		type target struct {
			id, image string
			pid       int
		}
		a.mu.RLock()
		ts := make([]target, 0, len(a.containers))
		for _, c := range a.containers {
			if c.pid != 0 {
				ts = append(ts, target{c.id, c.image, int(c.pid)})
			}
		}
		a.mu.RUnlock()
		now := time.Now()
		if a.procMon.Load() == nil { // without the exec sensor: scan the sockets (a sample)
			for _, t := range ts {
				tr.Observe(t.id, t.image, netflow.Procs("", "", t.pid), now) // a process gone meanwhile is no error worth a line
			}
		}
		b := tr.Batch(node, now)
		pending = append(pending, b.Flows...)
		if len(pending) > agentproto.MaxFlows { // the oldest go
			pending = pending[len(pending)-agentproto.MaxFlows:]
		}
		if len(pending) == 0 {
			continue
		}
		b.Flows = pending
		if err := s.post(ctx, "/api/v1/governance/flows", b, nil); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("reporting connections (kept for the next try)", "flows", len(b.Flows), "err", err)
			}
			continue
		}
		pending = nil
	}
}
