package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// What containerd's CRI plugin writes (containerd 1.6 to 2.x,
// internal/cri/labels and internal/cri/annotations): a pod is a sandbox
// container whose labels are the pod's labels (over the pause image's
// config labels); each of the pod's containers carries the kubelet's
// io.kubernetes.* labels (over its image's config labels) and the
// sandbox's id as an annotation of its OCI spec.
const (
	labelCRIKind        = "io.cri-containerd.kind" // "sandbox" or "container"
	annotationSandboxID = "io.kubernetes.cri.sandbox-id"
)

// podUIDPattern is what a pod UID may look like before it goes into a
// containerd filter.
var podUIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// subjectOf is what mode rules select container info of containerd
// namespace ns by. A CRI container's labels are its pod's, read from its
// sandbox; if they cannot be read it has none (rules by label then do not
// apply to it: by default they can only tighten). Any other container's
// labels are its own.
func (a *Agent) subjectOf(ctx context.Context, ns string, info containers.Container) subject {
	s := subjectOfLabels(ns, maps.Clone(info.Labels)) // modes.go
	if s.container == "" {
		s.container = info.ID
	}
	if info.Labels[labelCRIKind] == "container" {
		// A pod's container is selected by its pod's labels only: its own
		// labels are the kubelet's over its image's config labels, which
		// the image's author wrote.
		pod, err := a.sandboxLabels(ctx, info)
		if err != nil {
			a.log.Warn("reading the pod labels of a container: rules by label do not apply to it", "container", info.ID, "error", err.Error())
		}
		s.labels = maps.Clone(pod)
	}
	if s.labels == nil {
		s.labels = map[string]string{}
	}
	s.workload = workloadOf(s.pod, s.labels)
	return s
}

// sandboxLabels returns the labels of the sandbox (pod) of CRI container
// info: the sandbox named by its spec's annotation, else the one sandbox
// of its pod UID. The sandbox must agree on the pod's UID and namespace.
func (a *Agent) sandboxLabels(ctx context.Context, info containers.Container) (map[string]string, error) {
	uid := info.Labels[agentproto.LabelPodUID]
	var sb containers.Container
	if id := sandboxIDOf(info); id != "" {
		c, err := a.client.LoadContainer(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("loading sandbox %q: %w", id, err)
		}
		if sb, err = c.Info(ctx); err != nil {
			return nil, fmt.Errorf("reading sandbox %q: %w", id, err)
		}
	} else {
		if !podUIDPattern.MatchString(uid) {
			return nil, fmt.Errorf("no sandbox id and pod uid %q", uid)
		}
		cs, err := a.client.Containers(ctx, fmt.Sprintf(`labels.%q==sandbox,labels.%q==%q`, labelCRIKind, agentproto.LabelPodUID, uid))
		if err != nil {
			return nil, fmt.Errorf("finding the sandbox of pod %q: %w", uid, err)
		}
		if len(cs) != 1 {
			return nil, fmt.Errorf("finding the sandbox of pod %q: %d found", uid, len(cs))
		}
		if sb, err = cs[0].Info(ctx); err != nil {
			return nil, fmt.Errorf("reading sandbox %q: %w", cs[0].ID(), err)
		}
	}
	switch {
	case sb.Labels[labelCRIKind] != "sandbox":
		return nil, fmt.Errorf("container %q is not a sandbox", sb.ID)
	case sb.Labels[agentproto.LabelPodUID] != uid || sb.Labels[agentproto.LabelPodNamespace] != info.Labels[agentproto.LabelPodNamespace]:
		return nil, errors.New("the sandbox is another pod's")
	}
	return sb.Labels, nil
}

// sandboxIDOf reads the sandbox id annotation of a container's OCI spec.
func sandboxIDOf(info containers.Container) string {
	if info.Spec == nil {
		return ""
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(info.Spec.GetValue(), &spec) != nil {
		return ""
	}
	return spec.Annotations[annotationSandboxID]
}

// workloadOf names the workload that owns pod from the labels its
// controller puts on it (the CRI gives no owner reference): a Deployment's
// pod is NAME-<pod-template-hash>-<suffix>, a StatefulSet's NAME-<ordinal>,
// a DaemonSet's NAME-<suffix>, a Job's carries job-name. A bare pod is its
// own workload. Like the labels, this is what the pod's creator wrote.
func workloadOf(pod string, labels map[string]string) string {
	if pod == "" {
		return ""
	}
	if j := labels["batch.kubernetes.io/job-name"]; j != "" {
		return j
	}
	if j := labels["job-name"]; j != "" {
		return j
	}
	if h := labels["pod-template-hash"]; h != "" {
		if i := strings.LastIndex(pod, "-"+h+"-"); i > 0 {
			return pod[:i]
		}
	}
	if labels["controller-revision-hash"] != "" {
		if i := strings.LastIndex(pod, "-"); i > 0 {
			return pod[:i]
		}
	}
	return pod
}
