package fleet

import (
	"context"
	"slices"
	"time"
)

// DefaultSilent is how long a node may stay silent before the index
// forgets it: twenty missed heartbeats at the agent's default interval
// (30 s; an agent run with --heartbeat over it is forgotten between two).
const DefaultSilent = 10 * time.Minute

// A node whose heartbeats stopped (deleted, partitioned, its agent
// killed) would stay in the index with every container it last listed,
// "running" for every query (exposure, the workloads page, the allowlist
// route's "reports running" scope) until the server restarts; and names
// reported under a token that is not node-bound would pile up without
// bound. Sweep forgets such nodes; a heartbeat brings a node back whole.

// Sweep forgets, every interval until ctx is done, the nodes silent for
// more than silent (zero: DefaultSilent).
func (x *Index) Sweep(ctx context.Context, interval, silent time.Duration) error {
	if silent <= 0 {
		silent = DefaultSilent
	}
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if gone := x.Forget(now.Add(-silent)); len(gone) > 0 {
				x.log.Info("forgot silent nodes", "nodes", gone, "silent", silent)
			}
		}
	}
}

// Forget drops every node whose last heartbeat came before before, with
// its workloads, drift times and host advisories, and returns their names.
func (x *Index) Forget(before time.Time) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var gone []string
	for name, n := range x.nodes {
		if !n.info.LastHeartbeat.Before(before) {
			continue
		}
		for _, w := range n.workloads {
			if img := x.images[w.Image]; img != nil {
				delete(img.workloads, wkey(w.Node, w.Container))
				if len(img.workloads) == 0 {
					x.dropImage(w.Image)
				}
			}
			delete(x.drifts, wkey(w.Node, w.Container))
		}
		for _, a := range n.advs {
			delete(x.hostsBy[a], name)
			if len(x.hostsBy[a]) == 0 {
				delete(x.hostsBy, a)
			}
		}
		delete(x.dirtyNodes, name)
		delete(x.nodes, name)
		gone = append(gone, name)
	}
	slices.Sort(gone)
	return gone
}
