package agent

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// The gate's scope. With a cgroup scope (--gate-cgroup) every process in
// it is taken for a container's, whatever its pid namespace: a hostPID
// container's first execs are held as any other's (bpf/gate.h). Without
// one a container's process is one in a pid namespace of its own, and
// hostPID containers are out of the gate's reach. On a kubelet node the
// scope is the pods' cgroup root, where only containers' processes are
// (and runc's while it makes them: see errNoTask); "auto" finds it.

// GateCgroupAuto asks the agent to find the kubelet's pods' cgroup root.
const GateCgroupAuto = "auto"

// kubepodsNames are the kubelet's pods' cgroup root as its drivers name it:
// systemd ("kubepods.slice") and cgroupfs ("kubepods").
var kubepodsNames = []string{"kubepods.slice", "kubepods"}

// scopeOnce resolves the scope once (gateRecover and gateOpen both ask).
type scopeOnce struct {
	once sync.Once
	dir  string
}

// gateDir is the gate's cgroup scope relative to the cgroup2 mount, ""
// for none: cfg.GateCgroup, or for auto the kubelet's pods' root, found
// from the agent's own cgroup (a pod of that kubelet), else at the top of
// the cgroup2 mount (the agent's cgroup namespace hides its own path). An
// auto that finds none, or both, gates without a scope (logged).
func (a *Agent) gateDir() string {
	s := &a.gate.scope
	s.once.Do(func() {
		s.dir = a.cfg.GateCgroup
		if s.dir != GateCgroupAuto {
			if s.dir != "" {
				s.dir = path.Clean("/" + s.dir)
			}
			return
		}
		s.dir = ""
		mnt, err := cgroup2Mount()
		if err == nil {
			var self string
			if self, err = cgroupV2Path(os.Getpid()); err == nil {
				s.dir, err = kubeletPodsRoot(mnt, self)
			}
		}
		if err != nil {
			a.log.Warn("the gate has no cgroup scope: hostPID containers' first execs are not held", "error", err.Error())
			return
		}
		a.log.Info("the gate's cgroup scope: the kubelet's pods", "cgroup", s.dir)
	})
	return s.dir
}

// kubeletPodsRoot finds the kubelet's pods' cgroup root: the path of
// self (a cgroup v2 path) up to its kubepods component (a custom
// --cgroup-root above it included), else the one of kubepods.slice and
// kubepods that is at the top of the cgroup2 mount mnt.
func kubeletPodsRoot(mnt, self string) (string, error) {
	parts := strings.Split(path.Clean("/"+self), "/")
	for i, p := range parts {
		for _, n := range kubepodsNames {
			if p == n {
				return path.Clean("/" + strings.Join(parts[:i+1], "/")), nil
			}
		}
	}
	var found []string
	for _, n := range kubepodsNames {
		if st, err := os.Stat(filepath.Join(mnt, n)); err == nil && st.IsDir() {
			found = append(found, "/"+n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("finding the kubelet's pods' cgroup: none of %v in %s nor in the agent's cgroup %s", kubepodsNames, mnt, self)
	}
	return "", fmt.Errorf("finding the kubelet's pods' cgroup: both %v in %s: set --gate-cgroup", found, mnt)
}

// gateScope limits the gate to gateDir, made if missing (not with auto:
// only one found is taken), or leaves it node-wide.
func (a *Agent) gateScope(m *execmon.Monitor) error {
	rel := a.gateDir()
	if rel == "" {
		return nil
	}
	mnt, err := cgroup2Mount()
	if err != nil {
		return err
	}
	dir := filepath.Join(mnt, filepath.Clean("/"+rel))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making the gate's cgroup %q: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("reading the gate's cgroup %q: %w", dir, err)
	}
	if st.Ino == 1 { // the cgroup v2 root's inode
		return fmt.Errorf("the gate's cgroup %q is the root: every process of the node would be held", dir)
	}
	return m.GateUnder(st.Ino)
}
