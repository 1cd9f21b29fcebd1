package agent

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// WatchDir watches the filesystem that holds dir as one container (of the
// image named ref, at list.Image) whose execs are decided by list, in the
// agent's mode, without containerd: for
// runtimes the agent does not follow, and for bench/agent. The
// filesystem must not be the agent's own root.
func (a *Agent) WatchDir(id, namespace, ref, dir string, list *allowlist.List) error {
	if a.fan == nil {
		return errors.New("watching a directory: only with fanotify")
	}
	dev, err := rootDevice(dir, "/")
	if err != nil {
		return fmt.Errorf("watching %q: %w", dir, err)
	}
	if err := a.fan.MarkExec(dir); err != nil {
		return err
	}
	c := &container{id: id, namespace: namespace, image: list.Image, dev: dev, mode: a.cfg.Mode,
		compiled: allowlist.Compile(list, verdictsPerContainer), ref: ref, learn: a.window(list.Image, ref, a.learnFor(namespace, nil))}
	a.mu.Lock()
	if old, ok := a.containers[id]; ok {
		a.unindex(old)
	}
	if _, ok := a.lists[list.Image]; !ok {
		a.lists[list.Image] = list
	}
	a.containers[id], a.byDev[dev] = c, c
	a.mu.Unlock()
	return nil
}

// ServeExecs answers exec events until ctx ends, without containerd (for
// WatchDir).
func (a *Agent) ServeExecs(ctx context.Context) error {
	if a.fan == nil {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.serve(ctx) })
	g.Go(func() error {
		<-ctx.Done()
		return a.fan.Close()
	})
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// UnwatchDir stops watching what WatchDir watched at dir.
func (a *Agent) UnwatchDir(dir string) error {
	if a.fan == nil {
		return nil
	}
	dev, err := rootDevice(dir, "/")
	if err != nil {
		return fmt.Errorf("unwatching %q: %w", dir, err)
	}
	a.mu.Lock()
	if c := a.byDev[dev]; c != nil {
		a.unindex(c)
		delete(a.containers, c.id)
	}
	a.mu.Unlock()
	return a.fan.UnmarkExec(dir)
}
