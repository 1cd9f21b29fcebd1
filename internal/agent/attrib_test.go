package agent

import (
	"slices"
	"testing"
)

func TestParseCgroups(t *testing.T) {
	in := "12:memory:/default/web\n" +
		"11:pids:/kubepods/burstable/pod1/cri-containerd-abc123.scope\n" +
		"0::/default/web\n" +
		"1:name=systemd:/\n" +
		"garbage line\n" +
		"3:cpu:\n"
	got := parseCgroups([]byte(in))
	if want := []string{"default", "web", "kubepods", "burstable", "pod1", "abc123"}; !slices.Equal(got, want) {
		t.Errorf("parseCgroups = %q, want %q", got, want)
	}
}

func TestParseModeStrict(t *testing.T) {
	for _, s := range []string{"", "Prevent", "enforce", "prevent "} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) accepted", s)
		}
	}
}
