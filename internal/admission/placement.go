package admission

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// sensitive reports whether o is a sensitive workload, and why.
func (p *Placement) sensitive(o *Object) (bool, string) {
	for _, labels := range []map[string]string{o.Labels, o.Pod.Labels} {
		if v, ok := labels[p.Label]; ok && slices.Contains(p.SensitiveValues, v) {
			return true, fmt.Sprintf("label %s=%s", p.Label, v)
		}
	}
	if matchAny(p.Namespaces, o.Namespace) {
		return true, fmt.Sprintf("namespace %s", o.Namespace)
	}
	return false, ""
}

func (p *Placement) applies(o *Object) bool {
	return p != nil && p.Mode != Off && !matchAny(p.Exempt, o.Namespace)
}

// poolSelector spells the pool's node selector for messages.
func (p *Placement) poolSelector() string {
	keys := make([]string, 0, len(p.NodeSelector))
	for k := range p.NodeSelector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + p.NodeSelector[k]
	}
	return strings.Join(parts, ",")
}

// tolerates reports whether t tolerates the pool's taint pt.
func tolerates(t corev1.Toleration, pt Toleration) bool {
	if t.Effect != "" && pt.Effect != "" && string(t.Effect) != pt.Effect {
		return false
	}
	if t.Key == "" {
		return t.Operator == corev1.TolerationOpExists
	}
	if t.Key != pt.Key {
		return false
	}
	return t.Operator == corev1.TolerationOpExists || t.Value == pt.Value
}

// hasToleration reports whether the spec carries the pool toleration.
func hasToleration(spec *corev1.PodSpec, pt Toleration) bool {
	for _, t := range spec.Tolerations {
		if t.Key == pt.Key && string(t.Effect) == pt.Effect && t.Value == pt.Value && opOrEqual(string(t.Operator)) == opOrEqual(pt.Operator) {
			return true
		}
	}
	return false
}

func opOrEqual(op string) string {
	if op == "" {
		return "Equal"
	}
	return op
}

// placementRules checks that sensitive workloads go to the pool and only
// there, and that the others stay off it.
func (c *Config) placementRules(o *Object) []Finding {
	p := c.Placement
	if !p.applies(o) {
		return nil
	}
	spec := &o.Pod.Spec
	var out []Finding
	add := func(path, problem, fix string) {
		out = append(out, Finding{Rule: RulePlacement, Mode: p.Mode, Subject: "pod template", Path: path, Problem: problem, Fix: fix})
	}
	pool := p.poolSelector()
	if ok, why := p.sensitive(o); ok {
		if spec.NodeName != "" {
			add(o.SpecPath+"/nodeName", fmt.Sprintf("is sensitive (%s) but names node %s", why, spec.NodeName),
				fmt.Sprintf("remove nodeName; sensitive workloads run on the segregated pool (%s), injected by the mutating webhook", pool))
		}
		var keys []string
		for k := range p.NodeSelector {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, set := spec.NodeSelector[k]
			switch {
			case set && v != p.NodeSelector[k]:
				add(o.SpecPath+"/nodeSelector", fmt.Sprintf("is sensitive (%s) but selects nodes %s=%s", why, k, v),
					fmt.Sprintf("remove nodeSelector %s or set it to %s (the segregated pool)", k, p.NodeSelector[k]))
			case !set:
				add(o.SpecPath+"/nodeSelector", fmt.Sprintf("is sensitive (%s) but does not select the segregated pool", why),
					fmt.Sprintf("add nodeSelector %s (the mutating webhook does this when it is installed)", pool))
			}
		}
		for _, t := range p.Tolerations {
			if !hasToleration(spec, t) {
				add(o.SpecPath+"/tolerations", fmt.Sprintf("is sensitive (%s) but lacks the pool toleration %s", why, describeToleration(t)),
					fmt.Sprintf("add the toleration %s (the mutating webhook does this when it is installed)", describeToleration(t)))
			}
		}
		for _, term := range requiredTerms(spec) {
			for _, e := range term.MatchExpressions {
				if want, ok := p.NodeSelector[e.Key]; ok && !selectsValue(e, want) {
					add(o.SpecPath+"/affinity/nodeAffinity", fmt.Sprintf("is sensitive (%s) but its required node affinity excludes %s=%s", why, e.Key, want),
						fmt.Sprintf("remove the required node affinity on %s; sensitive workloads run on the segregated pool (%s)", e.Key, pool))
				}
			}
		}
		return out
	}
	for k, v := range spec.NodeSelector {
		if want, ok := p.NodeSelector[k]; ok && v == want {
			add(o.SpecPath+"/nodeSelector", fmt.Sprintf("is not sensitive but selects the segregated pool (%s=%s)", k, v),
				fmt.Sprintf("remove nodeSelector %s, or label the workload %s with a sensitive value", k, p.Label))
		}
	}
	for _, term := range requiredTerms(spec) {
		for _, e := range term.MatchExpressions {
			if want, ok := p.NodeSelector[e.Key]; ok && e.Operator == corev1.NodeSelectorOpIn && slices.Contains(e.Values, want) {
				add(o.SpecPath+"/affinity/nodeAffinity", fmt.Sprintf("is not sensitive but its node affinity selects the segregated pool (%s=%s)", e.Key, want),
					fmt.Sprintf("remove %s from the required node affinity, or label the workload %s with a sensitive value", want, p.Label))
			}
		}
	}
	for _, pt := range p.Tolerations {
		for i, t := range spec.Tolerations {
			if tolerates(t, pt) {
				add(fmt.Sprintf("%s/tolerations/%d", o.SpecPath, i), fmt.Sprintf("is not sensitive but tolerates the segregated pool's taint %s", describeToleration(pt)),
					fmt.Sprintf("remove the toleration %s, or label the workload %s with a sensitive value", describeK8sToleration(t), p.Label))
				break
			}
		}
	}
	return out
}

func requiredTerms(spec *corev1.PodSpec) []corev1.NodeSelectorTerm {
	a := spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	return a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
}

// selectsValue reports whether the expression admits key=want.
func selectsValue(e corev1.NodeSelectorRequirement, want string) bool {
	switch e.Operator {
	case corev1.NodeSelectorOpIn:
		return slices.Contains(e.Values, want)
	case corev1.NodeSelectorOpNotIn:
		return !slices.Contains(e.Values, want)
	case corev1.NodeSelectorOpDoesNotExist:
		return false
	}
	return true
}

func describeToleration(t Toleration) string {
	s := t.Key
	if opOrEqual(t.Operator) == "Equal" {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + t.Effect
	}
	return s
}

func describeK8sToleration(t corev1.Toleration) string {
	if t.Key == "" {
		return "with operator Exists and no key"
	}
	return describeToleration(Toleration{Key: t.Key, Operator: string(t.Operator), Value: t.Value, Effect: string(t.Effect)})
}

// placementPatches injects the pool's node selector and tolerations into
// a sensitive workload. Conflicting values are left for the validating
// webhook to deny.
func (c *Config) placementPatches(o *Object) []PatchOp {
	p := c.Placement
	if !p.applies(o) {
		return nil
	}
	if ok, _ := p.sensitive(o); !ok {
		return nil
	}
	spec := &o.Pod.Spec
	var ops []PatchOp
	if spec.NodeSelector == nil {
		ops = append(ops, PatchOp{Op: "add", Path: o.SpecPath + "/nodeSelector", Value: p.NodeSelector})
	} else {
		keys := make([]string, 0, len(p.NodeSelector))
		for k := range p.NodeSelector {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, set := spec.NodeSelector[k]; !set {
				ops = append(ops, PatchOp{Op: "add", Path: o.SpecPath + "/nodeSelector/" + escapePointer(k), Value: p.NodeSelector[k]})
			}
		}
	}
	var missing []Toleration
	for _, t := range p.Tolerations {
		if !hasToleration(spec, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		if spec.Tolerations == nil {
			ops = append(ops, PatchOp{Op: "add", Path: o.SpecPath + "/tolerations", Value: missing})
		} else {
			for _, t := range missing {
				ops = append(ops, PatchOp{Op: "add", Path: o.SpecPath + "/tolerations/-", Value: t})
			}
		}
	}
	return ops
}

// PatchOp is one JSONPatch (RFC 6902) operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// injectPlacement does to o what placementPatches' operations do, for
// offline evaluation (bulwark check).
func (c *Config) injectPlacement(o *Object) {
	p := c.Placement
	if !p.applies(o) {
		return
	}
	if ok, _ := p.sensitive(o); !ok {
		return
	}
	spec := &o.Pod.Spec
	if spec.NodeSelector == nil {
		spec.NodeSelector = map[string]string{}
	}
	for k, v := range p.NodeSelector {
		if _, set := spec.NodeSelector[k]; !set {
			spec.NodeSelector[k] = v
		}
	}
	for _, t := range p.Tolerations {
		if !hasToleration(spec, t) {
			spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
		}
	}
}
