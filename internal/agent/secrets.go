package agent

import (
	"context"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/secretfile"
)

// DefaultSecretEvery is how often RunSecrets asks the server again: the
// bound on how long a rotated value takes to appear, and on how long a
// secret stays in a container whose trust was lost.
const DefaultSecretEvery = 10 * time.Second

// RunSecrets delivers secrets to the watched containers that ask for
// them (label bulwark.dev/secrets): every interval it asks the server
// (POST /api/v1/agent/secrets) for each such container and writes what is
// released into the container's volume under vols.Root, removing what is
// refused; the volumes of containers gone are removed. The containers
// must mount their volume (ROOT/<container id>) read-only.
func (a *Agent) RunSecrets(ctx context.Context, s *Sender, vols *secretfile.Volumes, node string, every time.Duration) error {
	if err := vols.Check(); err != nil {
		return err
	}
	if every <= 0 {
		every = DefaultSecretEvery
	}
	delivered := map[string]bool{}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		type target struct {
			id    string
			names []string
		}
		a.mu.RLock()
		var ts []target
		for _, c := range a.containers {
			if names := secretfile.Wanted(c.labels); len(names) > 0 {
				ts = append(ts, target{c.id, names})
			}
		}
		a.mu.RUnlock()
		live := map[string]bool{}
		for _, t := range ts {
			live[t.id] = true
			var resp agentproto.SecretsResponse
			req := agentproto.SecretsRequest{Node: node, Container: t.id, Names: t.names}
			if err := s.post(ctx, "/api/v1/agent/secrets", req, &resp); err != nil {
				if ctx.Err() == nil {
					a.log.Warn("asking for secrets", "container", t.id, "err", err)
				}
				continue
			}
			if _, _, err := vols.Apply(t.id, resp); err != nil {
				a.log.Warn("writing secrets", "container", t.id, "err", err)
			}
			delivered[t.id] = true
		}
		for id := range delivered {
			if !live[id] {
				vols.Remove(id)
				delete(delivered, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
