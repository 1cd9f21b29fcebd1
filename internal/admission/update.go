package admission

import (
	"context"
	"maps"

	"k8s.io/apimachinery/pkg/api/equality"
)

// An UPDATE is judged by what it changes, not as a create: once a digest
// is revoked or a rule tightened, a running pod must still take metadata
// updates (a controller removing its finalizer, the garbage collector
// moving ownerReferences, `kubectl label` during an incident).
//
//   - A workload (Deployment, ..., CronJob) whose pod template (metadata
//     and spec) is unchanged is admitted untouched: scaling, annotations,
//     labels and controller bookkeeping roll out no pod. When the template
//     changes, new pods roll out, each of which the Pod rules judge as a
//     create: the workload is judged in full, so a bad rollout is refused
//     up front.
//   - A Pod is never re-created by an update, so only what the update
//     adds is judged: the image rule for containers whose image changed
//     (kubectl set image) or that are new (ephemeral containers), and the
//     pod, placement and owner rules only for findings the old pod did not
//     already have. Owner labels are evaluated only when the labels change,
//     and deny only their removal; placement is not re-judged on a
//     label change (a running pod's node selector cannot change).
//   - The mutating webhook pins the tags of changed containers only and
//     never patches placement into an existing Pod (its node selector is
//     immutable, so the patch would fail the update).

// evaluateChange decides o, an update of old (nil for a create or when
// the old object is unknown).
func (w *Webhook) evaluateChange(ctx context.Context, o, old *Object) []Finding {
	if old == nil {
		return w.Evaluate(ctx, o, true)
	}
	lk := lookup{online: !w.offline, feedGate: true}
	if o.Kind != "Pod" {
		if templateUnchanged(o, old) {
			return nil
		}
		return w.Evaluate(ctx, o, true)
	}
	var out []Finding
	if !templateUnchanged(o, old) {
		out = append(out, w.imageRulesOf(ctx, o, changedContainers(o, old), lk)...)
		out = append(out, newFindings(w.cfg.podRules(o), w.cfg.podRules(old))...)
		out = append(out, newFindings(w.cfg.placementRules(o), w.cfg.placementRules(old))...)
	}
	if !maps.Equal(o.Pod.Labels, old.Pod.Labels) {
		out = append(out, newFindings(w.cfg.ownerRules(o), w.cfg.ownerRules(old))...)
	}
	return out
}

// mutateChange is Mutate for an update of old (nil for a create).
func (w *Webhook) mutateChange(ctx context.Context, o, old *Object) []PatchOp {
	switch {
	case old == nil:
		return w.Mutate(ctx, o)
	case templateUnchanged(o, old):
		return nil
	case o.Kind == "Pod":
		return w.pinTags(ctx, o, changedContainers(o, old))
	}
	return w.Mutate(ctx, o)
}

// templateUnchanged reports whether an update leaves what runs as it was:
// a Pod's spec, a workload's pod template.
func templateUnchanged(o, old *Object) bool {
	if o.Kind == "Pod" {
		return equality.Semantic.DeepEqual(o.Pod.Spec, old.Pod.Spec)
	}
	return equality.Semantic.DeepEqual(*o.Pod, *old.Pod)
}

// changedContainers lists the containers of o that old did not have with
// the same image (by kind of container and name).
func changedContainers(o, old *Object) []container {
	before := map[[2]string]string{}
	for _, c := range old.containers() {
		before[[2]string{c.What, c.Name}] = c.Image
	}
	var out []container
	for _, c := range o.containers() {
		if img, ok := before[[2]string{c.What, c.Name}]; !ok || img != c.Image {
			out = append(out, c)
		}
	}
	return out
}

// newFindings returns the findings of now that before did not have (as
// many times as they occur).
func newFindings(now, before []Finding) []Finding {
	type key struct{ rule, subject, problem string }
	had := map[key]int{}
	for _, f := range before {
		had[key{f.Rule, f.Subject, f.Problem}]++
	}
	var out []Finding
	for _, f := range now {
		k := key{f.Rule, f.Subject, f.Problem}
		if had[k] > 0 {
			had[k]--
			continue
		}
		out = append(out, f)
	}
	return out
}
