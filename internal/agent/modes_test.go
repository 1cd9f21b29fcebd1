package agent

import (
	"testing"

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
