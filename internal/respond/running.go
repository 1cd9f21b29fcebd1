package respond

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// runs checks that pod runs what t says its agent saw: a container named
// t.Container (for a rollback, one of the pod's containers, which its
// controller's template names: a patch of another name would add a
// container), not pinned to another digest than t.Image by the pod's
// spec, nor reported by the kubelet running another; for a rollback, an
// image of t.Repository. The spec is the API server's and the
// controller's. The status is the kubelet's: it refutes a report made
// with a stolen agent token, not root on the node (which holds the
// kubelet's credentials).
func runs(pod *corev1.Pod, t Target) error {
	if t.Container == "" {
		return mayRun(pod, t) // a rollback refuses it later
	}
	var spec *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == t.Container {
			spec = &pod.Spec.Containers[i]
		}
	}
	if spec == nil && t.Repository == "" {
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == t.Container {
				spec = &pod.Spec.InitContainers[i]
			}
		}
		for i := range pod.Spec.EphemeralContainers {
			if c := &pod.Spec.EphemeralContainers[i]; c.Name == t.Container {
				spec = &corev1.Container{Name: c.Name, Image: c.Image}
			}
		}
	}
	if spec == nil {
		return fmt.Errorf("no container %q", t.Container)
	}
	if _, d, ok := strings.Cut(spec.Image, "@"); ok && t.Image != "" && d != t.Image {
		return fmt.Errorf("container %q is pinned to %s, not %s", t.Container, d, t.Image)
	}
	if t.Repository != "" && repositoryOf(spec.Image) != repositoryOf(t.Repository) {
		return fmt.Errorf("container %q runs %s, not an image of %s", t.Container, spec.Image, t.Repository)
	}
	statuses := append(append([]corev1.ContainerStatus{}, pod.Status.ContainerStatuses...), pod.Status.InitContainerStatuses...)
	for _, cs := range statuses {
		if cs.Name != t.Container {
			continue
		}
		if _, d, ok := strings.Cut(cs.ImageID, "@"); ok && t.Image != "" && d != t.Image {
			return fmt.Errorf("its kubelet reports container %q running %s, not %s", t.Container, d, t.Image)
		}
	}
	return nil
}

// mayRun checks a report that names no container of pod (an agent's
// report without the kubelet's container label): some container of the
// pod must be neither pinned by its spec to another digest than t.Image
// nor reported by its kubelet running another. Without it, such a report
// had any pod of the node replaced or quarantined.
func mayRun(pod *corev1.Pod, t Target) error {
	if t.Image == "" {
		return nil
	}
	var names []string
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	for _, name := range names {
		if runs(pod, Target{Container: name, Image: t.Image}) == nil {
			return nil
		}
	}
	return fmt.Errorf("no container of it runs %s (the report names no container; every one is pinned to or reported running another digest)", t.Image)
}

// repositoryOf is image's repository: without digest and tag, a Docker Hub
// short name in full (nginx: index.docker.io/library/nginx).
func repositoryOf(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	if r, err := name.NewRepository(image); err == nil {
		return r.Name()
	}
	return image
}
