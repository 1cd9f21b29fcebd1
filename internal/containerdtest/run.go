package containerdtest

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// Run creates container id of img (Create) and starts its task.
func Run(t testing.TB, ctx context.Context, c *client.Client, img client.Image, id string, opts ...oci.SpecOpts) client.Task {
	t.Helper()
	task := Create(t, ctx, c, img, id, opts...)
	if err := task.Start(ctx); err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
	return task
}

// Create creates container id of img in the namespace of ctx with the
// image's config and opts, and its task (created, not started, output
// discarded), as a runtime does before a container's entrypoint runs. The
// task is killed and the container removed when the test ends.
func Create(t testing.TB, ctx context.Context, c *client.Client, img client.Image, id string, opts ...oci.SpecOpts) client.Task {
	t.Helper()
	ns, _ := namespaces.Namespace(ctx)
	cont, err := c.NewContainer(ctx, id, client.WithImage(img), client.WithNewSnapshot(id+"-snap", img),
		client.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img)}, opts...)...))
	if err != nil {
		t.Fatalf("creating container %s: %v", id, err)
	}
	task, err := cont.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("creating the task of %s: %v", id, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 20*time.Second)
		defer cancel()
		task.Kill(cctx, 9)
		if ch, err := task.Wait(cctx); err == nil {
			<-ch
		}
		task.Delete(cctx)
		cont.Delete(cctx, client.WithSnapshotCleanup)
	})
	return task
}

// WithLabels adds labels to the container's own labels (the runtime
// labels a kubelet sets, io.kubernetes.pod.namespace and the like). It is
// a spec option because containerd hands spec options the container
// record it stores.
func WithLabels(labels map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, c *containers.Container, _ *oci.Spec) error {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		maps.Copy(c.Labels, labels)
		return nil
	}
}
