package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/containers"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// Modes chooses a container's mode: by its Kubernetes namespace (the CRI
// label io.kubernetes.pod.namespace) when it has one, else by its
// containerd namespace, else Default. The most specific rule wins: a pod
// namespace rule over a containerd namespace rule.
type Modes struct {
	Default Mode
	// ByNamespace maps a namespace (Kubernetes or containerd) to a mode.
	ByNamespace map[string]Mode
}

// For is the mode of a container of containerd namespace ns with labels.
func (m Modes) For(ns string, labels map[string]string) Mode {
	return ModeRules{}.decide(namespaceRules(m.ByNamespace, nil), subjectOfLabels(ns, labels), m.Default, 0).Mode
}

// namespaceRules are modes and learning windows by namespace as rules.
func namespaceRules(modes map[string]Mode, learn map[string]time.Duration) []ModeRule {
	var out []ModeRule
	for ns, m := range modes {
		out = append(out, ModeRule{Namespace: ns, Mode: m, Text: "namespace=" + ns + " mode=" + string(m)})
	}
	for ns, d := range learn {
		out = append(out, ModeRule{Namespace: ns, Learn: &d, Text: "namespace=" + ns + " learn=" + d.String()})
	}
	return out
}

// ParseNamespaceModes reads "NS=MODE,NS=MODE" strictly; a mode stricter
// than def needs no mechanism of its own (the agent's mechanism serves all
// modes), a namespace named twice is an error.
func ParseNamespaceModes(s string) (map[string]Mode, error) {
	out := map[string]Mode{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("parsing namespace mode %q: want NAMESPACE=MODE", kv)
		}
		md, err := ParseMode(v)
		if err != nil {
			return nil, fmt.Errorf("parsing namespace mode %q: %w", kv, err)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("parsing namespace modes: %q named twice", k)
		}
		out[k] = md
	}
	return out, nil
}

// modeFor is the mode of a container of containerd namespace ns with
// labels (its own, no pod's): the rules without pod or container names.
func (a *Agent) modeFor(ns string, labels map[string]string) Mode {
	return a.decide(subjectOfLabels(ns, labels)).Mode
}

// subjectOfLabels is a subject from a containerd namespace and the CRI
// labels alone.
func subjectOfLabels(ns string, labels map[string]string) subject {
	return subject{ns: ns, podNS: labels[agentproto.LabelPodNamespace], pod: labels[agentproto.LabelPodName],
		container: labels[agentproto.LabelContainer], labels: labels}
}

// modeRules is every mode rule: --namespace-modes and --namespace-learn as
// rules by namespace, then --mode-rules.
func (a *Agent) modeRules() []ModeRule {
	return append(namespaceRules(a.cfg.NamespaceModes, a.cfg.Learn.ByNamespace), a.cfg.ModeRules.Rules...)
}

// configuredStrictest is the strictest mode of --mode and every rule.
func (a *Agent) configuredStrictest() Mode {
	m := a.cfg.Mode
	for _, r := range a.modeRules() {
		if stricter(r.Mode, m) {
			m = r.Mode
		}
	}
	return m
}

// decide is the mode and learning window of s (moderules.go).
func (a *Agent) decide(s subject) modeDecision {
	return a.cfg.ModeRules.decide(a.modeRules(), s, a.cfg.Mode, a.cfg.Learn.Window)
}

// decideContainer is the mode and learning window of a container being
// adopted, logged with the rules that gave them.
func (a *Agent) decideContainer(ctx context.Context, ns string, info containers.Container) modeDecision {
	d := a.decide(a.subjectOf(ctx, ns, info)) // podsel.go
	if d.Mode != ModeOff && a.configuredStrictest() == ModeOff {
		// No rule watches anything: no mechanism is open, and the mode
		// label cannot open one.
		d.Ignored = append(d.Ignored, "mode "+string(d.Mode)+" from "+d.ModeRule+": every rule of this node is off")
		d.Mode = ModeOff
	}
	for _, why := range d.Ignored {
		a.log.Warn("mode rule ignored", "container", info.ID, "reason", why)
	}
	a.log.Debug("container mode", "container", info.ID, "mode", d.Mode, "rule", d.ModeRule, "learn", d.Learn, "learn_rule", d.LearnRule)
	return d
}

// strictest is the strictest mode any container may get: what the
// mechanism, the canary and the node's state are about. It counts every
// rule (one by label may select a container later) and the containers
// watched (the mode label may have tightened one).
func (a *Agent) strictest() Mode {
	m := a.configuredStrictest()
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, c := range a.containers {
		if !c.canary && stricter(c.mode, m) {
			m = c.mode
		}
	}
	return m
}

// parseNamespaceDurations reads "NS=DURATION,..." strictly (no negative
// durations, no namespace twice).
func parseNamespaceDurations(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		d, err := time.ParseDuration(v)
		if !ok || k == "" || err != nil || d < 0 {
			return nil, fmt.Errorf("parsing namespace learning window %q: want NAMESPACE=DURATION (0 or more)", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("parsing namespace learning windows: %q named twice", k)
		}
		out[k] = d
	}
	return out, nil
}

// namesAnywhere are the rules that relax --mode by pod, workload or
// container name in every namespace (none named, or a glob): names are the
// pod creator's, so anyone who can create a pod in any namespace can take
// such a rule (docs/runtime.md, Modes).
func (cfg Config) namesAnywhere() []string {
	var out []string
	for _, r := range cfg.ModeRules.Rules {
		byName := r.Pod != "" || r.Workload != "" || r.Container != ""
		if byName && stricter(cfg.Mode, r.Mode) && r.Mode != "" && (r.Namespace == "" || strings.ContainsAny(r.Namespace, "*?[")) {
			out = append(out, r.Text)
		}
	}
	return out
}

// checkModes refuses a Config whose namespace modes or rules name no mode.
func (cfg Config) checkModes() error {
	for ns, m := range cfg.NamespaceModes {
		if _, err := ParseMode(string(m)); err != nil {
			return fmt.Errorf("namespace %q: %w", ns, err)
		}
	}
	for _, r := range cfg.ModeRules.Rules {
		if _, err := ParseMode(string(r.Mode)); r.Mode != "" && err != nil {
			return fmt.Errorf("mode rule %q: %w", r.Text, err)
		}
	}
	return nil
}

// mayPrevent reports whether a container may be in prevent: a rule says
// so, or the mode label can tighten one (a node with any rule not off).
// What is set up at start for prevent (the exec sensor's kills) follows it.
func (a *Agent) mayPrevent() bool {
	m := a.configuredStrictest()
	return m == ModePrevent || (m != ModeOff && a.cfg.ModeRules.ModeLabel != "")
}
