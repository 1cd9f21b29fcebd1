package agent

import (
	"log/slog"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// TestModes: a pod namespace rule beats a containerd namespace rule, which
// beats the default; the flag is read strictly; the node is as strict as
// its strictest namespace.
func TestModes(t *testing.T) {
	nm, err := ParseNamespaceModes("payments=prevent, k8s.io=detect,dev=off")
	if err != nil {
		t.Fatal(err)
	}
	m := Modes{Default: ModeDetect, ByNamespace: nm}
	pod := func(ns string) map[string]string { return map[string]string{agentproto.LabelPodNamespace: ns} }
	for _, c := range []struct {
		ns     string
		labels map[string]string
		want   Mode
	}{
		{"k8s.io", pod("payments"), ModePrevent},
		{"k8s.io", pod("web"), ModeDetect},
		{"k8s.io", pod("dev"), ModeOff},
		{"default", nil, ModeDetect},
		{"dev", nil, ModeOff},
	} {
		if got := m.For(c.ns, c.labels); got != c.want {
			t.Errorf("For(%q, %v) = %s, want %s", c.ns, c.labels, got, c.want)
		}
	}
	for _, bad := range []string{"payments", "=prevent", "a=enforce", "a=off,a=detect"} {
		if _, err := ParseNamespaceModes(bad); err == nil {
			t.Errorf("ParseNamespaceModes(%q) accepted", bad)
		}
	}
	a := &Agent{cfg: Config{Mode: ModeOff, NamespaceModes: nm}}
	if a.strictest() != ModePrevent {
		t.Fatalf("strictest = %s, want prevent", a.strictest())
	}
	if st, _ := a.Enforcement(); st != agentproto.StateBroken {
		t.Fatalf("prevent in one namespace with no mechanism: %q, want broken", st)
	}
}

// TestNamespaceLearning: a learning window per namespace overrides
// --learn (0 turns it off there); the first container of a digest opens
// its window with its namespace's length.
func TestNamespaceLearning(t *testing.T) {
	by, err := parseNamespaceDurations("canary=10m,prod=0s")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{Learn: LearnConfig{Window: time.Minute, ByNamespace: by}}, log: slog.New(slog.DiscardHandler)}
	pod := func(ns string) map[string]string { return map[string]string{agentproto.LabelPodNamespace: ns} }
	if a.learnFor("k8s.io", pod("canary")) != 10*time.Minute || a.learnFor("k8s.io", pod("prod")) != 0 || a.learnFor("default", nil) != time.Minute {
		t.Fatal("learnFor does not follow the namespace rules")
	}
	if w := a.window("sha256:p", "", a.learnFor("k8s.io", pod("prod"))); w != nil {
		t.Fatal("prod opened a window")
	}
	w := a.window("sha256:c", "", a.learnFor("k8s.io", pod("canary")))
	if w == nil || w.end.Sub(w.start) != 10*time.Minute || a.window("sha256:c", "", 0) != w {
		t.Fatalf("canary window %+v; a later container must share it", w)
	}
	for _, bad := range []string{"a", "a=-1s", "a=x", "a=1s,a=2s"} {
		if _, err := parseNamespaceDurations(bad); err == nil {
			t.Errorf("parseNamespaceDurations(%q) accepted", bad)
		}
	}
	if !(LearnConfig{ByNamespace: by}).learning() || (LearnConfig{ByNamespace: map[string]time.Duration{"x": 0}}).learning() {
		t.Fatal("learning() does not see namespace windows")
	}
}
