package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

func mustRules(t *testing.T, s string) []ModeRule {
	t.Helper()
	rs, err := ParseModeRules(s)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestParseModeRules: rules are read strictly, and every error names the
// rule (its number and text) and the bad term.
func TestParseModeRules(t *testing.T) {
	rs := mustRules(t, "namespace=pay pod=api-* mode=prevent learn=10m, label:app.kubernetes.io/name=web label:tier=db* mode=detect ,")
	if len(rs) != 2 {
		t.Fatalf("%d rules, want 2", len(rs))
	}
	if r := rs[0]; r.Namespace != "pay" || r.Pod != "api-*" || r.Mode != ModePrevent || r.Learn == nil || *r.Learn != 10*time.Minute {
		t.Fatalf("rule 1: %+v", r)
	}
	if r := rs[1]; r.Labels["app.kubernetes.io/name"] != "web" || r.Labels["tier"] != "db*" || r.Learn != nil || r.Mode != ModeDetect {
		t.Fatalf("rule 2: %+v", r)
	}
	for _, c := range []struct{ in, want string }{
		{"namespace=a mode=prevent, pod=x mode=enforce", `rule 2 "pod=x mode=enforce"`},
		{"pod=x", "sets neither"},
		{"mode=prevent", "selects every container"},
		{"label:tier=db learn=-1s", `"learn=-1s"`},
		{"label:tier=db learn=soon", `"learn=soon"`},
		{"namespace=a namespace=b mode=off", "given twice"},
		{"nmespace=a mode=off", `unknown term "nmespace=a"`},
		{"label:=x mode=off", `unknown term "label:=x"`},
		{"pod mode=off", `term "pod"`},
		{"pod= mode=off", `term "pod="`},
		{"pod=[ mode=off", "bad pattern"},
	} {
		_, err := ParseModeRules(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseModeRules(%q) = %v, want an error with %s", c.in, err, c.want)
		}
	}
}

// TestModeRulesFromConfigFile: the config file takes the rules as a list;
// a bad one stops the agent with a usage error that names it.
func TestModeRulesFromConfigFile(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("bulwark-agent:\n  mode-rules:\n    - namespace=pay mode=prevent\n    - workload=web container=nginx mode=detect learn=1h\n  labels-may-relax: true\n")
	fs := pflag.NewFlagSet("bulwark-agent", pflag.ContinueOnError)
	f := addModeRuleFlags(fs)
	if err := applyConfig(fs, cfg); err != nil {
		t.Fatal(err)
	}
	mr, err := f.parse()
	if err != nil {
		t.Fatal(err)
	}
	if len(mr.Rules) != 2 || mr.Rules[1].Workload != "web" || mr.Rules[1].Container != "nginx" || !mr.LabelsMayRelax || mr.ModeLabel != LabelRuntimeMode {
		t.Fatalf("from the config file: %+v", mr)
	}
	write("bulwark-agent:\n  mode-rules:\n    - namespace=pay mode=prevent\n    - workload=web mode=prevnet\n")
	var stderr strings.Builder
	if code := Main(context.Background(), []string{"--config", cfg}, io.Discard, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), `rule 2 "workload=web mode=prevnet"`) {
		t.Fatalf("a bad rule in the config file: %d %q", code, stderr.String())
	}
}

// TestModeRulePrecedence: the most specific rule wins (a pod namespace
// over a containerd namespace, a name or label over a namespace, two
// selectors over one); among equally specific rules the strictest mode
// and the shortest learning window win; rules that do not match fall
// through to --mode and --learn.
func TestModeRulePrecedence(t *testing.T) {
	rules := append(namespaceRules(map[string]Mode{"k8s.io": ModeOff, "pay": ModeDetect}, map[string]time.Duration{"pay": time.Hour}),
		mustRules(t, "namespace=pay workload=api mode=prevent learn=5m,"+
			"namespace=pay workload=api container=debug mode=detect,"+
			"container=side* mode=off, container=side* mode=detect learn=2m, container=side* learn=1m,"+
			"pod=batch-* mode=detect")...)
	mr := ModeRules{LabelsMayRelax: true}
	pod := func(ns, name, workload, container string) subject {
		return subject{ns: "k8s.io", podNS: ns, pod: name, workload: workload, container: container}
	}
	for _, c := range []struct {
		name  string
		s     subject
		mode  Mode
		learn time.Duration
	}{
		{"containerd namespace", subject{ns: "k8s.io", container: "x"}, ModeOff, 30 * time.Second},
		{"pod namespace over containerd namespace", pod("pay", "web-1", "web", "app"), ModeDetect, time.Hour},
		{"pod in another namespace: containerd namespace", pod("shop", "web-1", "web", "app"), ModeOff, 30 * time.Second},
		{"workload over namespace", pod("pay", "api-5d9-x", "api", "app"), ModePrevent, 5 * time.Minute},
		{"three selectors over two", pod("pay", "api-5d9-x", "api", "debug"), ModeDetect, 5 * time.Minute},
		{"same weight: strictest mode, shortest window", pod("shop", "w-1", "w", "sidecar"), ModeDetect, time.Minute},
		{"pod name glob over containerd namespace", pod("shop", "batch-7", "batch", "job"), ModeDetect, 30 * time.Second},
		{"no rule", subject{ns: "default", container: "c"}, ModePrevent, 30 * time.Second},
	} {
		d := mr.decide(rules, c.s, ModePrevent, 30*time.Second)
		if d.Mode != c.mode || d.Learn != c.learn {
			t.Errorf("%s: %s, learn %s (rules %q, %q), want %s, %s", c.name, d.Mode, d.Learn, d.ModeRule, d.LearnRule, c.mode, c.learn)
		}
	}
}

// TestLabelsOnlyTighten: a pod's creator sets its labels (and an image's
// author the labels containerd copies from the image config), so a rule
// by label or the mode label may make a container's mode stricter or its
// learning window shorter than the other rules give, never the reverse,
// unless LabelsMayRelax (a rule that would relax is left out before the
// most specific is picked); a bad mode label is ignored, not obeyed.
func TestLabelsOnlyTighten(t *testing.T) {
	rules := append(namespaceRules(map[string]Mode{"pay": ModePrevent}, nil),
		mustRules(t, "label:tier=dev mode=off learn=1h, label:tier=critical mode=prevent learn=0s, namespace=pay label:debug=true mode=detect,"+
			"label:tier=dev label:debug=true mode=off, label:team=x mode=prevent")...)
	mr := ModeRules{ModeLabel: LabelRuntimeMode}
	sub := func(ns string, labels ...string) subject {
		s := subject{ns: "k8s.io", podNS: ns, pod: "p", labels: map[string]string{}}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			s.labels[k] = v
		}
		return s
	}
	for _, c := range []struct {
		name    string
		s       subject
		relax   bool
		mode    Mode
		learn   time.Duration
		ignored int
	}{
		{"label rule may not relax the default", sub("web", "tier=dev"), false, ModeDetect, 10 * time.Minute, 2},
		{"label rule tightens", sub("web", "tier=critical"), false, ModePrevent, 0, 0},
		{"label rule may not relax a namespace rule", sub("pay", "debug=true"), false, ModePrevent, 10 * time.Minute, 1},
		{"mode label tightens", sub("web", LabelRuntimeMode+"=prevent"), false, ModePrevent, 10 * time.Minute, 0},
		{"mode label may not relax", sub("pay", LabelRuntimeMode+"=off"), false, ModePrevent, 10 * time.Minute, 1},
		{"mode label after a refused label rule", sub("web", "tier=dev", LabelRuntimeMode+"=off"), false, ModeDetect, 10 * time.Minute, 3},
		{"a refused label rule does not hide a less specific one that tightens", sub("web", "tier=dev", "debug=true", "team=x"), false, ModePrevent, 10 * time.Minute, 3},
		{"bad mode label ignored", sub("web", LabelRuntimeMode+"=Prevent;off"), false, ModeDetect, 10 * time.Minute, 1},
		{"relax allowed: label rule", sub("web", "tier=dev"), true, ModeOff, time.Hour, 0},
		{"relax allowed: mode label", sub("pay", LabelRuntimeMode+"=detect"), true, ModeDetect, 10 * time.Minute, 0},
	} {
		mr.LabelsMayRelax = c.relax
		d := mr.decide(rules, c.s, ModeDetect, 10*time.Minute)
		if d.Mode != c.mode || d.Learn != c.learn || len(d.Ignored) != c.ignored {
			t.Errorf("%s: %s, learn %s, ignored %q; want %s, %s, %d ignored", c.name, d.Mode, d.Learn, d.Ignored, c.mode, c.learn, c.ignored)
		}
	}
	if d := (ModeRules{}).decide(rules, sub("web", LabelRuntimeMode+"=prevent"), ModeDetect, 0); d.Mode != ModeDetect {
		t.Fatalf("with no mode label configured the label was obeyed: %s", d.Mode)
	}
}

// TestWorkloadOf: the owning workload from the labels controllers put on
// their pods.
func TestWorkloadOf(t *testing.T) {
	for _, c := range []struct {
		pod    string
		labels map[string]string
		want   string
	}{
		{"web-7d4b9c8f5-x2x7q", map[string]string{"pod-template-hash": "7d4b9c8f5"}, "web"},
		{"db-2", map[string]string{"controller-revision-hash": "db-5f6", "statefulset.kubernetes.io/pod-name": "db-2"}, "db"},
		{"node-exporter-abcde", map[string]string{"controller-revision-hash": "6c8"}, "node-exporter"},
		{"migrate-x7k2p", map[string]string{"batch.kubernetes.io/job-name": "migrate", "job-name": "migrate"}, "migrate"},
		{"debug", nil, "debug"},
		{"web-1", map[string]string{"pod-template-hash": "nothere"}, "web-1"},
		{"", map[string]string{"job-name": "x"}, ""},
	} {
		if got := workloadOf(c.pod, c.labels); got != c.want {
			t.Errorf("workloadOf(%q, %v) = %q, want %q", c.pod, c.labels, got, c.want)
		}
	}
}

// TestModeLabelOnAnOffNode: on a node whose rules are all off no
// mechanism is open, so the mode label cannot ask for prevent there (the
// node would report itself broken); on a node in detect it can, and the
// node is then as strict as that container.
func TestModeLabelOnAnOffNode(t *testing.T) {
	info := containers.Container{ID: "c", Labels: map[string]string{LabelRuntimeMode: "prevent"}}
	a := &Agent{cfg: Config{Mode: ModeOff, ModeRules: ModeRules{ModeLabel: LabelRuntimeMode}}, log: slog.New(slog.DiscardHandler)}
	if d := a.decideContainer(context.Background(), "default", info); d.Mode != ModeOff || len(d.Ignored) != 1 {
		t.Fatalf("an off node: %s, ignored %q; want off, the label ignored", d.Mode, d.Ignored)
	}
	a.cfg.Mode = ModeDetect
	a.containers = map[string]*container{}
	d := a.decideContainer(context.Background(), "default", info)
	if d.Mode != ModePrevent {
		t.Fatalf("a detect node: %s, want prevent", d.Mode)
	}
	a.containers["c"] = &container{id: "c", mode: d.Mode}
	a.containers["canary"] = &container{id: "canary", mode: ModePrevent, canary: true}
	if m := a.strictest(); m != ModePrevent {
		t.Fatalf("strictest with a container in prevent: %s", m)
	}
	delete(a.containers, "c")
	if m := a.strictest(); m != ModeDetect {
		t.Fatalf("strictest with only the canary in prevent: %s, want detect", m)
	}
}

// TestSubjectOf: a container that is not a CRI pod's container (a pod's
// sandbox, a standalone container) is selected by its own labels, its
// Kubernetes namespace and pod name included when it has them, and by its
// id as container name.
func TestSubjectOf(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler)}
	sb := a.subjectOf(context.Background(), "k8s.io", containers.Container{ID: "sb1", Labels: map[string]string{labelCRIKind: "sandbox",
		agentproto.LabelPodNamespace: "shop", agentproto.LabelPodName: "api-5d9-x", "pod-template-hash": "5d9", LabelRuntimeMode: "prevent"}})
	if sb.podNS != "shop" || sb.pod != "api-5d9-x" || sb.workload != "api" || sb.container != "sb1" || sb.labels[LabelRuntimeMode] != "prevent" {
		t.Fatalf("a sandbox: %+v", sb)
	}
	plain := a.subjectOf(context.Background(), "default", containers.Container{ID: "c1", Labels: map[string]string{agentproto.LabelPodNamespace: "pay"}})
	if plain.podNS != "pay" || plain.ns != "default" || plain.container != "c1" || plain.pod != "" || plain.workload != "" {
		t.Fatalf("a standalone container: %+v", plain)
	}
}

// TestNewRefusesBadRuleMode: a Config built in code is checked as the
// flags are: a rule naming no mode is refused, naming the rule.
func TestNewRefusesBadRuleMode(t *testing.T) {
	_, err := New(Config{Mode: ModeOff, Log: slog.New(slog.DiscardHandler),
		ModeRules: ModeRules{Rules: []ModeRule{{Namespace: "pay", Mode: "enforce", Text: "namespace=pay mode=enforce"}}}})
	if err == nil || !strings.Contains(err.Error(), `"namespace=pay mode=enforce"`) {
		t.Fatalf("New with a rule in mode enforce: %v", err)
	}
}

// TestMayPrevent: what is set up at start for prevent (the exec sensor's
// kills) is set up on a node where the mode label can tighten a container
// to prevent, not on one where nothing can be in prevent.
func TestMayPrevent(t *testing.T) {
	label := ModeRules{ModeLabel: LabelRuntimeMode}
	for _, c := range []struct {
		cfg  Config
		want bool
	}{
		{Config{Mode: ModeDetect}, false},
		{Config{Mode: ModeDetect, ModeRules: label}, true},
		{Config{Mode: ModeOff, ModeRules: label}, false},
		{Config{Mode: ModeOff, NamespaceModes: map[string]Mode{"pay": ModePrevent}}, true},
		{Config{Mode: ModeOff, ModeRules: ModeRules{Rules: mustRules(t, "label:a=b mode=prevent")}}, true},
	} {
		if got := (&Agent{cfg: c.cfg}).mayPrevent(); got != c.want {
			t.Errorf("mayPrevent(%+v) = %v, want %v", c.cfg, got, c.want)
		}
	}
}

// BenchmarkDecide: choosing a container's mode among 100 rules (once per
// container start).
func BenchmarkDecide(b *testing.B) {
	var rs []string
	for i := range 100 {
		rs = append(rs, fmt.Sprintf("namespace=ns%d workload=w%d label:team=t%d mode=prevent learn=%dm", i%10, i, i%7, i%5))
	}
	rules, err := ParseModeRules(strings.Join(rs, ","))
	if err != nil {
		b.Fatal(err)
	}
	s := subject{ns: "k8s.io", podNS: "ns3", pod: "w13-5d9-x", workload: "w13", container: "app",
		labels: map[string]string{"team": "t6", "tier": "dev", LabelRuntimeMode: "detect"}}
	mr := ModeRules{Rules: rules, ModeLabel: LabelRuntimeMode}
	for b.Loop() {
		mr.decide(rules, s, ModeDetect, 0)
	}
}
