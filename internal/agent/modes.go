package agent

import (
	"fmt"
	"strings"
	"time"

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
	if pod, ok := labels[agentproto.LabelPodNamespace]; ok {
		if md, ok := m.ByNamespace[pod]; ok {
			return md
		}
	}
	if md, ok := m.ByNamespace[ns]; ok {
		return md
	}
	return m.Default
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

// modeFor is the mode of a container of containerd namespace ns.
func (a *Agent) modeFor(ns string, labels map[string]string) Mode {
	return Modes{Default: a.cfg.Mode, ByNamespace: a.cfg.NamespaceModes}.For(ns, labels)
}

// strictest is the strictest mode any container may get: what the
// mechanism, the canary and the node's state are about.
func (a *Agent) strictest() Mode {
	rank := map[Mode]int{ModeOff: 0, ModeDetect: 1, ModePrevent: 2}
	m := a.cfg.Mode
	for _, v := range a.cfg.NamespaceModes {
		if rank[v] > rank[m] {
			m = v
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
