package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// RuleConfidential is the confidential-workload rule's name.
const RuleConfidential = "confidential"

// Confidential is the confidential-workload rule: a pod whose
// runtimeClassName is one of RuntimeClasses runs in a TEE of that kind, so
// each of its images must carry signed reference values for the kind (an
// attest.ReferencePredicateType attestation under the trust policy);
// otherwise no instance of it could ever be verified as running the
// certified image. Pods in Namespaces must use one of RuntimeClasses.
type Confidential struct {
	// RuntimeClasses maps a RuntimeClass name to its TEE kind
	// (kata-cc-snp: sev-snp, kata-cc-tdx: tdx).
	RuntimeClasses map[string]string `yaml:"runtimeClasses"`
	// Namespaces (globs) whose pods must all be confidential.
	Namespaces []string `yaml:"namespaces"`
	// NodeLabel, when set, is the node label whose value names the TEE
	// kind a node provides (bulwark.dev/tee: sev-snp): a confidential pod
	// must select only such nodes, by nodeSelector or by a required node
	// affinity term on the label with that value alone in every term.
	NodeLabel string `yaml:"nodeLabel"`
}

// selectsOnly reports whether spec confines the pod to nodes labelled
// label=value.
func selectsOnly(spec *corev1.PodSpec, label, value string) bool {
	if spec.NodeSelector[label] == value {
		return true
	}
	terms := requiredTerms(spec)
	if len(terms) == 0 {
		return false
	}
	for _, t := range terms {
		ok := false
		for _, e := range t.MatchExpressions {
			ok = ok || (e.Key == label && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 && e.Values[0] == value)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (c *Confidential) validate() error {
	if len(c.RuntimeClasses) == 0 {
		return errors.New("confidential: runtimeClasses is empty")
	}
	for rc, k := range c.RuntimeClasses {
		if _, err := attest.ParseKind(k); err != nil {
			return fmt.Errorf("confidential: runtimeClasses %s: %w", rc, err)
		}
	}
	return checkGlobs(c.Namespaces, "confidential", "namespaces")
}

func (c *Confidential) classes() string {
	var out []string
	for rc := range c.RuntimeClasses {
		out = append(out, rc)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// refKinds caches, per pinned image, the TEE kinds its verified reference
// attestation covers (nil: none), for a while.
type refKinds struct {
	mu sync.Mutex
	m  map[string]refKindsEntry
}

type refKindsEntry struct {
	kinds   []attest.Kind
	expires time.Time
}

// confidentialRules applies the rule to o.
func (w *Webhook) confidentialRules(ctx context.Context, o *Object, lk lookup) []Finding {
	c := w.cfg.Confidential
	mode := w.cfg.imageMode(o.Namespace)
	if c == nil || o.Pod == nil || mode == Off {
		return nil
	}
	rc := ""
	if o.Pod.Spec.RuntimeClassName != nil {
		rc = *o.Pod.Spec.RuntimeClassName
	}
	subject := fmt.Sprintf("%s %q", o.Kind, o.Name)
	kind, confidential := c.RuntimeClasses[rc]
	if !confidential {
		if matchAny(c.Namespaces, o.Namespace) {
			return []Finding{{Rule: RuleConfidential, Mode: mode, Path: o.SpecPath + "/runtimeClassName", Subject: subject,
				Problem: fmt.Sprintf("runs outside a TEE (runtimeClassName %q) in namespace %s, whose workloads must be confidential", rc, o.Namespace),
				Fix:     "set runtimeClassName to one of " + c.classes()}}
		}
		return nil
	}
	var out []Finding
	if c.NodeLabel != "" && !selectsOnly(&o.Pod.Spec, c.NodeLabel, kind) {
		out = append(out, Finding{Rule: RuleConfidential, Mode: mode, Path: o.SpecPath + "/nodeSelector", Subject: subject,
			Problem: fmt.Sprintf("runs in runtime class %s but may be scheduled on nodes without %s=%s", rc, c.NodeLabel, kind),
			Fix:     fmt.Sprintf("add nodeSelector {%s: %s}", c.NodeLabel, kind)})
	}
	for img, v := range w.checkImages(ctx, o.containers(), lk) {
		if v.Pinned == "" || !lk.online {
			continue // the image rule reports it, or offline nothing more can be known
		}
		kinds, err := w.referenceKinds(ctx, v.Pinned)
		m := mode
		var problem string
		switch {
		case err != nil:
			problem = fmt.Sprintf("image %s: its reference values could not be read within %s (%s)", img, w.cfg.VerifyBudget, shortErr(err))
			if w.cfg.FailurePolicy == FailOpen && m == Enforce {
				m = Warn
			}
		case !slices.Contains(kinds, attest.Kind(kind)):
			problem = fmt.Sprintf("image %s has no signed %s reference values (has %v), so no instance of it can be attested in runtime class %s", img, kind, kinds, rc)
		default:
			continue
		}
		out = append(out, Finding{Rule: RuleConfidential, Mode: m, Image: img, Path: o.SpecPath + "/runtimeClassName", Subject: subject,
			Problem: problem, Fix: fmt.Sprintf("record them: bulwark attest reference %s --kind %s --measurement ... --key ...", v.Pinned, kind)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out
}

// referenceKinds reads pinned's reference attestation under the trust
// policy within the budget, cached for negativeTTL (a missing one) or
// ten minutes (one found).
func (w *Webhook) referenceKinds(ctx context.Context, pinned string) ([]attest.Kind, error) {
	rk := &w.refKinds
	rk.mu.Lock()
	e, ok := rk.m[pinned]
	rk.mu.Unlock()
	if ok && w.now().Before(e.expires) {
		return e.kinds, nil
	}
	bctx, cancel := context.WithTimeout(ctx, w.cfg.VerifyBudget)
	defer cancel()
	w.metrics.registryCalls.Add(1)
	v, err := w.cfg.TrustPolicy.Verify(bctx, pinned, sign.Requirements{Attestations: []string{attest.ReferencePredicateType}}, w.images.reg)
	var ve *sign.VerificationError
	ttl := 10 * time.Minute
	switch {
	case errors.As(err, &ve):
		v, ttl = nil, negativeTTL
	case err != nil:
		return nil, err
	}
	var kinds []attest.Kind
	if v != nil {
		for _, a := range v.Attestations {
			if a.PredicateType != attest.ReferencePredicateType {
				continue
			}
			if p, err := attest.ParseReferencePredicate(a.Statement.Predicate); err == nil {
				kinds = append(kinds, p.Kinds()...)
			}
		}
	}
	rk.mu.Lock()
	if rk.m == nil {
		rk.m = map[string]refKindsEntry{}
	}
	rk.m[pinned] = refKindsEntry{kinds: kinds, expires: w.now().Add(ttl)}
	rk.mu.Unlock()
	return kinds, nil
}
