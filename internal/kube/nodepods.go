package kube

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// NodePods answers, from the API server, whether a node runs an image:
// the server corroborates with it an agent's claim before it gives the
// agent what only running the image should give (the allowlist of an
// uncertified digest). It needs list on pods.
type NodePods struct {
	Client *Client
}

// Runs reports whether a pod scheduled on node, not finished, has a
// container (init and ephemeral ones included) that its kubelet reports
// running digest (status imageID REPO@digest) or that the pod's spec pins
// to digest (IMAGE@digest). A tag without a status is no evidence: the
// kubelet has not said what it pulled.
//
// The spec is the API server's (whoever may create pods in the
// namespace); the status is the kubelet's. Both refute a claim made with
// a stolen agent token, not one made by root on the node: it holds the
// kubelet's credentials, which may write its own pods' status and create
// mirror pods bound to it.
func (n *NodePods) Runs(ctx context.Context, node, digest string) (bool, error) {
	if node == "" || digest == "" {
		return false, nil
	}
	var pods corev1.PodList
	q := url.Values{"fieldSelector": {"spec.nodeName=" + node}}
	if err := n.Client.Get(ctx, "/api/v1/pods?"+q.Encode(), &pods); err != nil {
		return false, fmt.Errorf("listing the pods of node %q: %w", node, err)
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Spec.NodeName == node && podRuns(p, digest) {
			return true, nil
		}
	}
	return false, nil
}

// podRuns is Runs for one pod.
func podRuns(p *corev1.Pod, digest string) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	for _, c := range p.Spec.InitContainers {
		if digestOf(c.Image) == digest {
			return true
		}
	}
	for _, c := range p.Spec.Containers {
		if digestOf(c.Image) == digest {
			return true
		}
	}
	for _, c := range p.Spec.EphemeralContainers {
		if digestOf(c.Image) == digest {
			return true
		}
	}
	for _, statuses := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, cs := range statuses {
			if digestOf(cs.ImageID) == digest {
				return true
			}
		}
	}
	return false
}

// digestOf is the digest after the last "@" of an image reference or a
// kubelet's imageID (repo@sha256:..., docker-pullable://repo@sha256:...);
// "" when there is none: a bare image id ("sha256:...") is the config's
// digest, not the manifest's the server scans.
func digestOf(ref string) string {
	i := strings.LastIndexByte(ref, '@')
	if i < 0 {
		return ""
	}
	return ref[i+1:]
}
