package agent

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// replaceTimeout bounds one replacement.
const replaceTimeout = 60 * time.Second

// replaceLater replaces c (a standalone container, no Kubernetes pod: a
// pod is the server's to replace through the Kubernetes API) once, in the
// background, when Config.ReplaceDrifted is set.
func (a *Agent) replaceLater(c *container) {
	if !a.cfg.ReplaceDrifted || c.labels[agentproto.LabelPodName] != "" {
		return
	}
	a.mu.Lock()
	if a.replacing == nil {
		a.replacing = map[string]bool{}
	}
	if a.replacing[c.id] || a.runCtx == nil {
		a.mu.Unlock()
		return
	}
	a.replacing[c.id] = true
	ctx := a.runCtx
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			delete(a.replacing, c.id)
			a.mu.Unlock()
		}()
		if err := a.replace(ctx, c.namespace, c.id); err != nil {
			a.log.Error("replacing a drifted container", "container", c.id, "namespace", c.namespace, "error", err)
			return
		}
		a.log.Warn("replaced a drifted container from its image", "container", c.id, "namespace", c.namespace, "image", c.image)
	}()
}

// replace kills the container's task, removes the container and its
// snapshot, and creates it again under the same id, from the same image
// and spec, on a fresh snapshot: whatever was written into it (the drifted
// file) is gone. Its standard streams are not reattached (null IO).
func (a *Agent) replace(ctx context.Context, ns, id string) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), replaceTimeout)
	defer cancel()
	ctr, err := a.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("loading container %q: %w", id, err)
	}
	info, err := ctr.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading container %q: %w", id, err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return fmt.Errorf("reading the spec of %q: %w", id, err)
	}
	img, err := a.client.GetImage(ctx, info.Image)
	if err != nil {
		return fmt.Errorf("loading image %q of %q: %w", info.Image, id, err)
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		wait, err := task.Wait(ctx)
		if err != nil {
			return fmt.Errorf("waiting on the task of %q: %w", id, err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			return fmt.Errorf("killing the task of %q: %w", id, err)
		}
		<-wait
		if _, err := task.Delete(ctx); err != nil {
			return fmt.Errorf("deleting the task of %q: %w", id, err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("deleting container %q: %w", id, err)
	}
	snap := id + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	nc, err := a.client.NewContainer(ctx, id, client.WithImage(img), client.WithSnapshotter(info.Snapshotter),
		client.WithNewSnapshot(snap, img), client.WithSpec(spec), client.WithContainerLabels(info.Labels),
		client.WithRuntime(info.Runtime.Name, nil))
	if err != nil {
		return fmt.Errorf("creating container %q again: %w", id, err)
	}
	task, err := nc.NewTask(ctx, cio.NullIO)
	if err != nil {
		return fmt.Errorf("creating the task of %q again: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("starting %q again: %w", id, err)
	}
	return nil
}
