package respond

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// forgedRollbacks: an agent (root on its node, or its token) reports a
// revoked digest running in a pod of its node that does not run it, to
// have the pod's Deployment rolled back: to add a container to it, or to
// swap its image for another repository's. The pod is read first; the
// report is refused and nothing is patched. A pod that does run it is
// rolled back.
func forgedRollbacks(t *testing.T, e *env) {
	ctx := t.Context()
	eng := e.engine(policy(nil, Rule{Namespace: "forge", Drift: Alert, Revoked: Rollback}))
	const target = "reg/shop@sha256:good"
	revoked := func(w fleet.Workload, event string) store.Response {
		t.Helper()
		r, err := eng.Respond(ctx, Case{Trigger: TriggerRevoked, Key: TriggerRevoked + ":" + event, Reason: "CVE-1 (HIGH)",
			Workload: w, Target: target})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	refused := func(what string, r store.Response, detail string) {
		t.Helper()
		if r.State != store.ResponseSkipped || !strings.HasPrefix(r.Detail, "refused: ") || !strings.Contains(r.Detail, detail) {
			t.Errorf("%s: %s %q, want refused (%s)", what, r.State, r.Detail, detail)
		}
	}
	unchanged := func(name, image string) {
		t.Helper()
		var d appsv1.Deployment
		if err := e.kc.Get(ctx, "/apis/apps/v1/namespaces/forge/deployments/"+name, &d); err != nil {
			t.Fatal(err)
		}
		if cs := d.Spec.Template.Spec.Containers; len(cs) != 1 || cs[0].Image != image || d.Annotations[RolledBackFromLabel] != "" {
			t.Errorf("Deployment %s patched on a forged report: %+v", name, cs)
		}
	}
	kubeletSays := func(pod, imageID string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"status": map[string]any{"containerStatuses": []map[string]any{{
			"name": "web", "image": "reg/shop:1", "imageID": imageID, "ready": true, "restartCount": 0}}}})
		if err := e.kc.Patch(ctx, podPath("forge", pod)+"/status", kube.MergePatch, b, nil); err != nil {
			t.Fatal(err)
		}
	}

	shop := e.deployment("forge", "shop", "reg/shop@sha256:bad", 1)[0]
	w := shop
	w.ContainerName = "sidecar" // a strategic merge of this name would add a container
	refused("another container's name", revoked(w, "c-1"), `no container "sidecar"`)
	unchanged("shop", "reg/shop@sha256:bad")

	bank := e.deployment("forge", "bank", "reg/bank:1", 1)[0]
	refused("another repository's pod", revoked(bank, "c-1"), "not an image of reg/shop")
	unchanged("bank", "reg/bank:1")

	pinned := e.deployment("forge", "pinned", "reg/shop@sha256:other", 1)[0]
	refused("a pod pinned to another digest", revoked(pinned, "c-1"), "pinned to sha256:other")
	unchanged("pinned", "reg/shop@sha256:other")

	tagged := e.deployment("forge", "tagged", "reg/shop:1", 1)[0]
	kubeletSays(tagged.Pod, "reg/shop@sha256:other")
	refused("a pod its kubelet says runs another digest", revoked(tagged, "c-1"), "running sha256:other")
	unchanged("tagged", "reg/shop:1")

	// The pod does run the revoked digest (by tag): rolled back.
	kubeletSays(tagged.Pod, "reg/shop@sha256:bad")
	if r := revoked(tagged, "c-2"); r.State != store.ResponseDone || r.Owner != "Deployment/tagged" {
		t.Errorf("a pod that runs the revoked digest: %+v", r)
	}
	if img, _ := e.deploymentImage("forge", "tagged"); img != target {
		t.Errorf("Deployment tagged runs %s, want %s", img, target)
	}
	// And the genuine report of shop's container: rolled back.
	if r := revoked(shop, "c-2"); r.State != store.ResponseDone {
		t.Errorf("shop: %+v", r)
	}
}

// forgedUnnamed: the same forged report without a container name skipped
// every check but the node's (runs had nothing to compare against), so
// an agent's token had any pod of its node replaced or quarantined by
// reporting a revoked digest in it. A report that names no container is
// now checked against all of the pod's: refused when every one is pinned
// to, or reported by its kubelet running, another digest.
func forgedUnnamed(t *testing.T, e *env) {
	ctx := t.Context()
	for _, action := range []string{Replace, Quarantine} {
		eng := e.engine(policy(nil, Rule{Namespace: "unnamed", Drift: Alert, Revoked: action}))
		pinned := e.pod("unnamed", "pinned-"+action, "reg/bank@sha256:other", nil)
		pinned.ContainerName = ""
		r, err := eng.Respond(ctx, Case{Trigger: TriggerRevoked, Key: TriggerRevoked + ":u-" + action, Reason: "CVE-1 (HIGH)", Workload: pinned})
		if err != nil || r.State != store.ResponseSkipped || !strings.Contains(r.Detail, "refused: ") {
			t.Errorf("%s of a pod pinned to another digest, no container named: %+v %v", action, r, err)
		}
		if !e.podExists("unnamed", pinned.Pod) {
			t.Errorf("%s: the pod was deleted on a forged report", action)
		}
	}
	// A pod one of whose containers may run the digest is answered.
	eng := e.engine(policy(nil, Rule{Namespace: "unnamed", Drift: Alert, Revoked: Replace}))
	tagged := e.pod("unnamed", "tagged", "reg/shop:1", nil)
	tagged.ContainerName = ""
	if r, err := eng.Respond(ctx, Case{Trigger: TriggerRevoked, Key: TriggerRevoked + ":u-2", Reason: "CVE-1 (HIGH)", Workload: tagged}); err != nil || r.State != store.ResponseDone {
		t.Errorf("a pod that may run the digest: %+v %v", r, err)
	}
}
