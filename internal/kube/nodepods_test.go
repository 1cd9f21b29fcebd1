package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPodRuns: what counts as a pod running a digest: its spec pinning
// any kind of container to it, or its kubelet reporting it; not a tag
// without a status, not a bare image id (the config's digest), not a
// finished pod, not another digest.
func TestPodRuns(t *testing.T) {
	const d = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const other = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	spec := func(image string) corev1.PodSpec {
		return corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}}
	}
	status := func(imageID string) corev1.PodStatus {
		return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "web", ImageID: imageID}}}
	}
	for _, c := range []struct {
		name string
		pod  corev1.Pod
		want bool
	}{
		{"pinned", corev1.Pod{Spec: spec("reg/app:1@" + d)}, true},
		{"init container pinned", corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Image: "reg/app@" + d}}}}, true},
		{"ephemeral container pinned", corev1.Pod{Spec: corev1.PodSpec{EphemeralContainers: []corev1.EphemeralContainer{
			{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Image: "reg/app@" + d}}}}}, true},
		{"kubelet reports it", corev1.Pod{Spec: spec("reg/app:1"), Status: status("reg/app@" + d)}, true},
		{"docker-pullable imageID", corev1.Pod{Spec: spec("reg/app:1"), Status: status("docker-pullable://reg/app@" + d)}, true},
		{"tag, no status", corev1.Pod{Spec: spec("reg/app:1")}, false},
		{"bare image id", corev1.Pod{Spec: spec("reg/app:1"), Status: status(d)}, false},
		{"another digest", corev1.Pod{Spec: spec("reg/app@" + other), Status: status("reg/app@" + other)}, false},
		{"finished", corev1.Pod{Spec: spec("reg/app@" + d), Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, false},
		{"failed", corev1.Pod{Spec: spec("reg/app:1"), Status: corev1.PodStatus{Phase: corev1.PodFailed,
			ContainerStatuses: status("reg/app@" + d).ContainerStatuses}}, false},
	} {
		if got := podRuns(&c.pod, d); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
