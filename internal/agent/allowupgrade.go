package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// upgradeLists replaces the lists made on the node (the server refused or
// did not answer at adoption) by the server's once it answers, in the
// containers that run them, without waiting for a new container: every
// allowRetry it asks again for each such digest. A digest in a learning
// window keeps its list (the learned contents are built on it).
func (a *Agent) upgradeLists(ctx context.Context) error {
	if a.cfg.Allowlists == nil {
		return nil
	}
	t := time.NewTicker(allowRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		type target struct{ digest, ns, ref string }
		var ts []target
		seen := map[string]bool{}
		a.mu.RLock()
		for _, c := range a.containers {
			l := a.lists[c.image]
			if c.canary || c.learn != nil || seen[c.image] || l == nil || !a.allow.retryDue(l) {
				continue
			}
			seen[c.image] = true
			ts = append(ts, target{c.image, c.namespace, c.ref})
		}
		a.mu.RUnlock()
		for _, x := range ts {
			if err := a.upgrade(namespaces.WithNamespace(ctx, x.ns), x.digest, x.ref); err != nil {
				a.allow.postpone(x.digest)
				a.log.Debug("the server's allowlist is still not there", "image", x.digest, "reason", err.Error())
			}
		}
	}
}

// upgrade asks the server for digest's list and, when it answers, puts it
// in every container of digest.
func (a *Agent) upgrade(ctx context.Context, digest, ref string) error {
	img, err := a.client.GetImage(ctx, ref)
	if err != nil {
		return fmt.Errorf("loading image %q: %w", ref, err)
	}
	cfg, err := imageConfig(ctx, img, digest)
	if err != nil {
		return err
	}
	l, err := a.fromServer(ctx, img, digest, cfg)
	if l == nil {
		return err
	}
	a.allow.made(l)
	n := 0
	a.mu.Lock()
	a.lists[digest] = l
	for _, c := range a.containers {
		if c.image == digest {
			c.relisted.Store(allowlist.Compile(l, verdictsPerContainer))
			n++
		}
	}
	a.mu.Unlock()
	if a.lsm != nil {
		a.relistLSM(ctx, digest)
	}
	a.log.Info("allowlist replaced by the server's", "image", digest, "source", l.Source, "containers", n, "allowed", l.Len())
	return nil
}

// imageConfig is the part of img's config an allowlist needs, as
// containerd has it.
func imageConfig(ctx context.Context, img client.Image, digest string) (allowlist.Config, error) {
	spec, err := img.Spec(ctx)
	if err != nil {
		return allowlist.Config{}, fmt.Errorf("reading the config of %q: %w", digest, err)
	}
	return allowlist.Config{Entrypoint: spec.Config.Entrypoint, Cmd: spec.Config.Cmd, Env: spec.Config.Env}, nil
}
