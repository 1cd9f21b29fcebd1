package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
)

// runcBin is where the test puts the host's runc (and libseccomp next to
// libc); absent, the runc case is skipped (the host test decides).
const runcBin = "/usr/sbin/runc"

// runcCase runs a real container with runc on an overlay root (containerd's
// layout; runc --no-pivot, as the initramfs cannot be pivoted from): runc
// makes its cgroup and its mount namespace. The agent's steps follow: the
// cgroup v2 id from /proc/PID/cgroup, the list compiled through
// /proc/PID/root (a root in another mount namespace), watched in prevent
// with mmap checks. runc exec of a listed static and dynamic program runs;
// of a new file in the writable layer fails with EPERM in runc's init and
// is reported for the container's cgroup.
func runcCase(ctx context.Context, enf *bpflsm.Enforcer, events <-chan bpflsm.Event) error {
	if _, err := os.Stat(runcBin); err != nil {
		fmt.Println("BULWARK runc absent")
		return nil
	}
	o, err := mountOverlay("/rc", true)
	if err != nil {
		return err
	}
	bundle := "/rc/bundle"
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(o.merged+"/proc", 0o755); err != nil {
		return err
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"args": []string{"/bin/busybox", "sleep", "600"}, "cwd": "/",
			"env":  []string{"PATH=/bin"},
			"user": map[string]any{"uid": 0, "gid": 0},
		},
		"root":     map[string]any{"path": o.merged},
		"hostname": "rc1",
		"mounts":   []map[string]any{{"destination": "/proc", "type": "proc", "source": "proc"}},
		"linux": map[string]any{
			"cgroupsPath": "/rc1",
			"namespaces":  []map[string]any{{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}},
		},
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(bundle+"/config.json", b, 0o644); err != nil {
		return err
	}
	runc := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, runcBin, append([]string{"--root", "/run/runc"}, args...)...)
		cmd.Dir = bundle
		return cmd.CombinedOutput()
	}
	// Detached, the container inherits runc's stdio: a file, not a pipe
	// that would stay open as long as the container runs.
	logf, err := os.Create("/rc/run.log")
	if err != nil {
		return err
	}
	run := exec.CommandContext(ctx, runcBin, "--root", "/run/runc", "run", "-d", "--no-pivot", "--pid-file", "/rc/pid", "rc1")
	run.Dir, run.Stdout, run.Stderr = bundle, logf, logf
	err = run.Run()
	logf.Close()
	if err != nil {
		out, _ := os.ReadFile("/rc/run.log")
		return fmt.Errorf("runc run: %v %q", err, out)
	}
	defer func() { _, _ = runc("delete", "-f", "rc1") }()
	pb, err := os.ReadFile("/rc/pid")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pb)))
	if err != nil {
		return fmt.Errorf("runc's pid file %q: %w", pb, err)
	}
	cg, cgPath, err := cgroupOf(pid)
	if err != nil {
		return err
	}
	root := "/proc/" + strconv.Itoa(pid) + "/root"
	list, err := overlayList()
	if err != nil {
		return err
	}
	comp, err := enf.Compile(ctx, cg, root, list, allowlist.NewDigestCache(64), true)
	if err != nil {
		return err
	}
	fmt.Printf("BULWARK runc container pid=%d cgroup=%s id=%d compiled through %s listed=%d\n", pid, cgPath, cg, root, len(comp.Files))
	if len(comp.Files) != 5 {
		return fmt.Errorf("runc: compiled %d files through the container's root, want 5", len(comp.Files))
	}
	if err := enf.Watch(cg, bpflsm.ModePrevent, true); err != nil {
		return err
	}
	for _, argv := range [][]string{{"/bin/busybox", "true"}, {dyn}} {
		if out, err := runc(append([]string{"exec", "rc1"}, argv...)...); err != nil {
			return fmt.Errorf("runc exec of listed %q: %v %q", argv, err, out)
		}
	}
	fmt.Println("BULWARK runc exec listed ran")
	if err := copyFile("/guest", o.merged+"/tmp/new"); err != nil {
		return err
	}
	out, err := runc("exec", "rc1", "/tmp/new", "ran", "runc-escape")
	if err == nil || strings.Contains(string(out), "BULWARK ran") {
		return fmt.Errorf("runc exec of a new file: it ran: %q", out)
	}
	ev, err := nextEvent(events, cg)
	if err != nil {
		return fmt.Errorf("runc: %w", err)
	}
	if ev.Verdict != bpflsm.VerdictRefused || ev.Path != "/tmp/new" {
		return fmt.Errorf("runc: event %+v, want /tmp/new refused", ev)
	}
	fmt.Printf("BULWARK runc exec new file refused: %q\n", lastLine(out))
	if err := enf.Unwatch(cg); err != nil {
		return err
	}
	return enf.Release(cg, comp)
}

// cgroupOf is pid's cgroup v2 id as the agent reads it: the inode of its
// directory named by /proc/PID/cgroup's 0:: line.
func cgroupOf(pid int) (uint64, string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return 0, "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			dir := filepath.Join("/sys/fs/cgroup", filepath.Clean("/"+p))
			var st syscall.Stat_t
			if err := syscall.Stat(dir, &st); err != nil {
				return 0, "", err
			}
			return st.Ino, dir, nil
		}
	}
	return 0, "", errors.New("no cgroup v2 line")
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
