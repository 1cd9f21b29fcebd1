package agent

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// ModeRule gives the containers it selects a mode, a learning window or
// both. A selector left empty selects everything; globs are path.Match
// patterns. Written "namespace=payments pod=api-* mode=prevent learn=10m"
// (terms separated by spaces, see ParseModeRules).
type ModeRule struct {
	Namespace string            // Kubernetes namespace, else containerd namespace
	Pod       string            // Kubernetes pod name
	Workload  string            // owning workload's name, derived from the pod (workloadOf)
	Container string            // Kubernetes container name, else containerd container id
	Labels    map[string]string // container and pod labels: KEY=VALUE (VALUE a glob)
	Mode      Mode              // "": the rule sets no mode
	Learn     *time.Duration    // nil: the rule sets no learning window
	Text      string            // as written, for errors and logs
}

// ModeRules is the mode configuration beyond --mode and --namespace-modes.
type ModeRules struct {
	Rules []ModeRule
	// ModeLabel, when set, is a container or pod label (by default
	// LabelRuntimeMode) whose value, a mode, can make its container's
	// mode stricter than the rules give.
	ModeLabel string
	// LabelsMayRelax lets rules that select by label, and ModeLabel, make
	// a mode weaker or a learning window longer than the rules that do not
	// look at labels give. Off by default: labels are set by whoever
	// creates the pod and, through the image config, by the image's author.
	LabelsMayRelax bool
}

// LabelRuntimeMode is the default ModeLabel.
const LabelRuntimeMode = "bulwark.dev/runtime-mode"

// Weights of a matched selector: the most specific rule (greatest sum)
// wins. A pod namespace is more specific than a containerd namespace
// (k8s.io holds every pod).
const (
	weightContainerdNS = 1
	weightPodNS        = 2
	weightName         = 4 // pod, workload, container, each label
)

// ParseModeRules reads "RULE,RULE,...", each rule terms separated by
// spaces: namespace=, pod=, workload=, container=, label:KEY=VALUE (any
// number), mode= and learn=. A rule needs a selector and a mode or a
// learning window; every error names the rule.
func ParseModeRules(s string) ([]ModeRule, error) {
	var out []ModeRule
	for i, text := range strings.Split(s, ",") {
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		r, err := parseModeRule(text)
		if err != nil {
			return nil, fmt.Errorf("parsing mode rule %d %q: %w", i+1, text, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseModeRule(text string) (ModeRule, error) {
	r := ModeRule{Text: text}
	seen := map[string]bool{}
	for _, term := range strings.Fields(text) {
		k, v, ok := strings.Cut(term, "=")
		if !ok || k == "" || v == "" {
			return r, fmt.Errorf("term %q: want KEY=VALUE", term)
		}
		if seen[k] {
			return r, fmt.Errorf("term %q: %s given twice", term, k)
		}
		seen[k] = true
		if _, err := path.Match(v, ""); err != nil {
			return r, fmt.Errorf("term %q: bad pattern: %w", term, err)
		}
		switch {
		case k == "namespace":
			r.Namespace = v
		case k == "pod":
			r.Pod = v
		case k == "workload":
			r.Workload = v
		case k == "container":
			r.Container = v
		case strings.HasPrefix(k, "label:") && len(k) > len("label:"):
			if r.Labels == nil {
				r.Labels = map[string]string{}
			}
			r.Labels[strings.TrimPrefix(k, "label:")] = v
		case k == "mode":
			m, err := ParseMode(v)
			if err != nil {
				return r, err
			}
			r.Mode = m
		case k == "learn":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return r, fmt.Errorf("term %q: want a duration, 0 or more", term)
			}
			r.Learn = &d
		default:
			return r, fmt.Errorf("unknown term %q: want namespace=, pod=, workload=, container=, label:KEY=, mode= or learn=", term)
		}
	}
	if r.Mode == "" && r.Learn == nil {
		return r, fmt.Errorf("sets neither mode= nor learn=")
	}
	if r.Namespace == "" && r.Pod == "" && r.Workload == "" && r.Container == "" && len(r.Labels) == 0 {
		return r, fmt.Errorf("selects every container: use --mode and --learn for that")
	}
	return r, nil
}

// subject is what rules select a container by.
type subject struct {
	ns        string            // containerd namespace
	podNS     string            // Kubernetes namespace, "" outside a pod
	pod       string            // pod name
	workload  string            // owning workload's name (workloadOf)
	container string            // Kubernetes container name, else containerd id
	labels    map[string]string // the container's labels, the pod's over them
}

// match reports whether r selects s and how specifically.
func (r ModeRule) match(s subject) (int, bool) {
	w := 0
	switch {
	case r.Namespace == "":
	case s.podNS != "" && glob(r.Namespace, s.podNS):
		w += weightPodNS
	case glob(r.Namespace, s.ns):
		w += weightContainerdNS
	default:
		return 0, false
	}
	for _, sel := range [][2]string{{r.Pod, s.pod}, {r.Workload, s.workload}, {r.Container, s.container}} {
		if sel[0] == "" {
			continue
		}
		if sel[1] == "" || !glob(sel[0], sel[1]) {
			return 0, false
		}
		w += weightName
	}
	for k, pat := range r.Labels {
		v, ok := s.labels[k]
		if !ok || !glob(pat, v) {
			return 0, false
		}
		w += weightName
	}
	return w, true
}

func glob(pattern, s string) bool {
	ok, _ := path.Match(pattern, s)
	return ok
}

var modeRank = map[Mode]int{ModeOff: 0, ModeDetect: 1, ModePrevent: 2}

// ruleHit is a rule that selects a container, and how specifically.
type ruleHit struct {
	r ModeRule
	w int
}

// bestRule is the most specific of hits that keep, then the one first
// puts first.
func bestRule(hits []ruleHit, keep func(ModeRule) bool, first func(a, b ModeRule) bool) (ModeRule, bool) {
	var b ruleHit
	found := false
	for _, h := range hits {
		if keep(h.r) && (!found || h.w > b.w || h.w == b.w && first(h.r, b.r)) {
			b, found = h, true
		}
	}
	return b.r, found
}

// stricter reports whether a is stricter than b.
func stricter(a, b Mode) bool { return modeRank[a] > modeRank[b] }

// modeDecision is a container's mode and learning window and the rules
// that gave them.
type modeDecision struct {
	Mode      Mode
	Learn     time.Duration
	ModeRule  string // "" for --mode
	LearnRule string // "" for --learn
	Ignored   []string
}

// decide picks s's mode and learning window from rules over the defaults:
// the most specific rule that sets one wins, then the strictest (a
// shorter window is stricter: learning admits what is not in the image).
// Unless LabelsMayRelax, rules that select by label, and the mode label,
// may only tighten what the other rules give: one that would relax is
// left out (and said in Ignored) before the winner is picked.
func (mr ModeRules) decide(rules []ModeRule, s subject, def Mode, learn time.Duration) modeDecision {
	d := modeDecision{Mode: def, Learn: learn}
	var hits []ruleHit
	for _, r := range rules {
		if w, ok := r.match(s); ok {
			hits = append(hits, ruleHit{r, w})
		}
	}
	byLabel := func(r ModeRule) bool { return len(r.Labels) > 0 }
	modeFirst := func(a, b ModeRule) bool { return stricter(a.Mode, b.Mode) }
	if r, ok := bestRule(hits, func(r ModeRule) bool { return r.Mode != "" && !byLabel(r) }, modeFirst); ok {
		d.Mode, d.ModeRule = r.Mode, r.Text
	}
	floor := d.Mode
	if r, ok := bestRule(hits, func(r ModeRule) bool {
		if r.Mode == "" || !byLabel(r) || mr.LabelsMayRelax || !stricter(floor, r.Mode) {
			return r.Mode != ""
		}
		d.Ignored = append(d.Ignored, fmt.Sprintf("rule %q: a label may not relax mode %s to %s", r.Text, floor, r.Mode))
		return false
	}, modeFirst); ok {
		d.Mode, d.ModeRule = r.Mode, r.Text
	}
	learnFirst := func(a, b ModeRule) bool { return *a.Learn < *b.Learn }
	if r, ok := bestRule(hits, func(r ModeRule) bool { return r.Learn != nil && !byLabel(r) }, learnFirst); ok {
		d.Learn, d.LearnRule = *r.Learn, r.Text
	}
	window := d.Learn
	if r, ok := bestRule(hits, func(r ModeRule) bool {
		if r.Learn == nil || !byLabel(r) || mr.LabelsMayRelax || *r.Learn <= window {
			return r.Learn != nil
		}
		d.Ignored = append(d.Ignored, fmt.Sprintf("rule %q: a label may not lengthen the learning window %s to %s", r.Text, window, *r.Learn))
		return false
	}, learnFirst); ok {
		d.Learn, d.LearnRule = *r.Learn, r.Text
	}
	if mr.ModeLabel == "" {
		return d
	}
	v, ok := s.labels[mr.ModeLabel]
	if !ok {
		return d
	}
	m, err := ParseMode(v)
	switch {
	case err != nil:
		d.Ignored = append(d.Ignored, fmt.Sprintf("label %s=%q: not a mode", mr.ModeLabel, v))
	case stricter(m, d.Mode) || (mr.LabelsMayRelax && m != d.Mode):
		d.Mode, d.ModeRule = m, "label "+mr.ModeLabel+"="+v
	case m != d.Mode:
		d.Ignored = append(d.Ignored, fmt.Sprintf("label %s=%s: a label may not relax mode %s", mr.ModeLabel, v, d.Mode))
	}
	return d
}

// learning reports whether a rule gives a learning window.
func (mr ModeRules) learning() bool {
	for _, r := range mr.Rules {
		if r.Learn != nil && *r.Learn > 0 {
			return true
		}
	}
	return false
}

// modeRuleFlags are the flags of ModeRules.
type modeRuleFlags struct {
	rules, label *string
	relax        *bool
}

func addModeRuleFlags(fs *pflag.FlagSet) *modeRuleFlags {
	return &modeRuleFlags{
		rules: fs.String("mode-rules", "", `modes and learning windows by namespace, pod, workload, container and label, overriding --mode, --learn and --namespace-*: "RULE,RULE", each "SELECTOR... mode=MODE learn=DURATION" with selectors namespace=, pod=, workload=, container=, label:KEY= (globs); the most specific rule wins, then the strictest (a list in the config file)`),
		label: fs.String("mode-label", LabelRuntimeMode, `container or pod label whose value (off, detect, prevent) makes its container's mode stricter than the rules ("": ignored)`),
		relax: fs.Bool("labels-may-relax", false, "let rules by label and --mode-label make a mode weaker or a learning window longer than the other rules (whoever creates a pod or builds its image sets its labels)"),
	}
}

// parse reads the flags into ModeRules.
func (f *modeRuleFlags) parse() (ModeRules, error) {
	rs, err := ParseModeRules(*f.rules)
	return ModeRules{Rules: rs, ModeLabel: *f.label, LabelsMayRelax: *f.relax}, err
}
