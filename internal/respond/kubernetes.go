package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bulwark-sec/bulwark/internal/kube"
)

// Labels and names the responses put on cluster objects.
const (
	QuarantineLabel     = "bulwark.dev/quarantine"
	QuarantinePolicy    = "bulwark-quarantine"
	RolledBackFromLabel = "bulwark.dev/rolled-back-from"
)

// Target is the pod a response acts on.
type Target struct {
	Namespace, Pod, PodUID string
	Container              string // the container's name in the pod
	// Node is the node whose agent reported the pod: the pod must run
	// there, so an agent can only have its own node's pods acted on.
	Node string
	// Image is the digest the agent reported the container running; the
	// pod must not say it runs another.
	Image string
	// Repository, for a rollback, is the repository whose image the
	// rollback writes: the container must run an image of it, so a
	// report cannot have a controller's image swapped for another
	// repository's, nor a container added to it.
	Repository string
}

// Owner is the controller that owns a pod: Deployment, StatefulSet,
// DaemonSet, or another kind (Job, a bare ReplicaSet); zero for a bare
// pod.
type Owner struct{ Kind, Name string }

func (o Owner) String() string {
	if o.Kind == "" {
		return ""
	}
	return o.Kind + "/" + o.Name
}

// rollbackable kinds and their collection in apps/v1.
var rollbackable = map[string]string{"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}

// ErrPodGone is Owner's answer when the pod no longer exists (or is
// another pod of the same name now).
var ErrPodGone = errors.New("the pod no longer exists")

// ErrNotOnNode is Owner's answer when the pod does not run on the node
// whose agent reported it: nothing is done to it.
var ErrNotOnNode = errors.New("the pod is not on the reporting node")

// ErrNotRunning is Owner's answer when the pod does not run what the
// agent reported (no such container, another digest, another
// repository): nothing is done to it.
var ErrNotRunning = errors.New("the pod does not run the reported image")

// Kubernetes takes responses through the Kubernetes API.
type Kubernetes struct {
	Client *kube.Client
}

func podPath(ns, name string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/pods/" + url.PathEscape(name)
}

// Owner reads the pod and follows its controller references: a
// ReplicaSet's own controller (a Deployment) is the owner.
func (k *Kubernetes) Owner(ctx context.Context, t Target) (Owner, error) {
	var pod corev1.Pod
	if err := k.Client.Get(ctx, podPath(t.Namespace, t.Pod), &pod); err != nil {
		if kube.IsNotFound(err) {
			return Owner{}, ErrPodGone
		}
		return Owner{}, err
	}
	if t.PodUID != "" && string(pod.UID) != t.PodUID {
		return Owner{}, ErrPodGone
	}
	// A pod not yet scheduled (no nodeName) is on no node: no agent saw
	// it run, so none may have it acted on.
	if t.Node != "" && pod.Spec.NodeName != t.Node {
		return Owner{}, fmt.Errorf("%w: pod %s/%s runs on node %s, not on %s, whose agent reported it",
			ErrNotOnNode, t.Namespace, t.Pod, pod.Spec.NodeName, t.Node)
	}
	if err := runs(&pod, t); err != nil {
		return Owner{}, fmt.Errorf("%w: pod %s/%s: %w", ErrNotRunning, t.Namespace, t.Pod, err)
	}
	ref := metav1.GetControllerOf(&pod)
	if ref == nil {
		return Owner{}, nil
	}
	if ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" {
		return Owner{Kind: ref.Kind, Name: ref.Name}, nil
	}
	var rs appsv1.ReplicaSet
	err := k.Client.Get(ctx, "/apis/apps/v1/namespaces/"+url.PathEscape(t.Namespace)+"/replicasets/"+url.PathEscape(ref.Name), &rs)
	if err != nil {
		return Owner{}, err
	}
	if up := metav1.GetControllerOf(&rs); up != nil {
		return Owner{Kind: up.Kind, Name: up.Name}, nil
	}
	return Owner{Kind: "ReplicaSet", Name: rs.Name}, nil
}

// Replace deletes the pod, only if it is still the pod with t.PodUID,
// so that its controller creates a new one.
func (k *Kubernetes) Replace(ctx context.Context, t Target) (string, error) {
	opts := &metav1.DeleteOptions{}
	if t.PodUID != "" {
		uid := types.UID(t.PodUID)
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err := k.Client.Delete(ctx, podPath(t.Namespace, t.Pod), opts)
	switch {
	case kube.IsNotFound(err):
		return "the pod was already gone", nil
	case kube.IsConflict(err):
		return "the pod was already replaced (another UID)", nil
	case err != nil:
		return "", err
	}
	return fmt.Sprintf("deleted pod %s/%s; its controller recreates it", t.Namespace, t.Pod), nil
}

// Rollback sets the image of container t.Container in o's pod template
// to image, and labels o with the digest it rolled back from.
func (k *Kubernetes) Rollback(ctx context.Context, t Target, o Owner, image, from string) (string, error) {
	coll, ok := rollbackable[o.Kind]
	if !ok {
		return "", fmt.Errorf("rolling back %s: not a Deployment, StatefulSet or DaemonSet", o)
	}
	if t.Container == "" {
		return "", fmt.Errorf("rolling back %s: the container's name is unknown", o)
	}
	patch := map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{RolledBackFromLabel: from}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []map[string]string{{"name": t.Container, "image": image}}}}},
	}
	b, _ := json.Marshal(patch)
	p := "/apis/apps/v1/namespaces/" + url.PathEscape(t.Namespace) + "/" + coll + "/" + url.PathEscape(o.Name)
	if err := k.Client.Patch(ctx, p, kube.StrategicMergePatch, b, nil); err != nil {
		return "", err
	}
	return fmt.Sprintf("set container %s of %s to %s", t.Container, o, image), nil
}

// Quarantine makes sure the namespace has the deny-all NetworkPolicy
// that selects quarantined pods, then labels the pod with it. The pod
// keeps running, cut off, for forensics.
func (k *Kubernetes) Quarantine(ctx context.Context, t Target) (string, error) {
	np := networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: QuarantinePolicy, Namespace: t.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "bulwark"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{QuarantineLabel: "true"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	err := k.Client.Create(ctx, "/apis/networking.k8s.io/v1/namespaces/"+url.PathEscape(t.Namespace)+"/networkpolicies", np, nil)
	if err != nil && !kube.IsConflict(err) {
		return "", err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{QuarantineLabel: "true"}}})
	if err := k.Client.Patch(ctx, podPath(t.Namespace, t.Pod), kube.MergePatch, patch, nil); err != nil {
		if kube.IsNotFound(err) {
			return "the pod was already gone", nil
		}
		return "", err
	}
	return fmt.Sprintf("labelled pod %s/%s %s=true; NetworkPolicy %s denies its traffic", t.Namespace, t.Pod, QuarantineLabel, QuarantinePolicy), nil
}
