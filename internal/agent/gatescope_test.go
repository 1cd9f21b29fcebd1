package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestKubeletPodsRoot: --gate-cgroup=auto takes the kubelet's pods' root
// from the agent's own cgroup (either driver, a custom cgroupRoot above
// it), else the one kubepods directory at the top of the cgroup2 mount
// (the agent's cgroup namespace hides its path); none or both is an error
// (the gate then has no scope), never a guess.
func TestKubeletPodsRoot(t *testing.T) {
	for _, c := range []struct {
		self, want, err string
		dirs            []string
	}{
		{self: "/kubepods/besteffort/pod1/abc", want: "/kubepods"},
		{self: "/kubepods/pod1/abc", want: "/kubepods"},
		{self: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope", want: "/kubepods.slice"},
		{self: "/node-root/kubepods/besteffort/pod1/abc", want: "/node-root/kubepods"},
		{self: "/", dirs: []string{"kubepods"}, want: "/kubepods"},
		{self: "/", dirs: []string{"kubepods.slice", "system.slice"}, want: "/kubepods.slice"},
		{self: "/system.slice/bulwark-agent.service", dirs: []string{"kubepods"}, want: "/kubepods"},
		{self: "/", dirs: []string{"kubepods", "kubepods.slice"}, err: "both"},
		{self: "/", dirs: []string{"system.slice"}, err: "none"},
		{self: "/kubepods-besteffort/x", err: "none"},
	} {
		mnt := t.TempDir()
		for _, d := range c.dirs {
			if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		got, err := kubeletPodsRoot(mnt, c.self)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s with %v: %q, %v; want an error saying %q", c.self, c.dirs, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s with %v: %q, %v; want %q", c.self, c.dirs, got, err, c.want)
		}
	}
}

// TestGateScopeRoot: a scope of the cgroup root would hold every process
// of the node (its daemons in the host's pid namespace): refused, the gate
// stays off, rather than a node outage.
func TestGateScopeRoot(t *testing.T) {
	if _, err := cgroup2Mount(); err != nil {
		kerneltest.Skip(t, "no cgroup v2: %v", err)
	}
	for _, dir := range []string{"/", ".", "a/.."} {
		a := &Agent{cfg: Config{GateCgroup: dir}}
		if err := a.gateScope(nil); err == nil || !strings.Contains(err.Error(), "is the root") {
			t.Errorf("gate cgroup %q: %v; want refused", dir, err)
		}
	}
}
