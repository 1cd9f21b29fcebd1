package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// hostLoader is the host's ELF interpreter, the one /bin/true names.
const hostLoader = "/lib64/ld-linux-x86-64.so.2"

// dynamicImage is probeImage plus a dynamic program (the host's
// /bin/true), its ELF interpreter and its libc, all in the image.
func dynamicImage(t *testing.T) v1.Image {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the dynamic test image is built from the host's amd64 glibc")
	}
	files := map[string][]byte{"tmp/": nil, "ctl/": nil}
	probe := buildProbe(t)
	files["bin/probe"], files["bin/tool"] = probe, probe
	for dst, src := range map[string]string{"bin/true": "/bin/true", strings.TrimPrefix(hostLoader, "/"): hostLoader,
		"lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Skipf("reading the host's %s: %v", src, err)
		}
		files[dst] = b
	}
	return containerdtest.Image(t, files, "/bin/probe", "serve", "/ctl")
}

// TestHolesWithContainerd: the ways around a root-filesystem-only mark,
// each refused in prevent and reported in detect, in real containers:
//   - a drifted binary copied to /dev (runc's tmpfs, the container's own)
//     and to a bind-mounted host directory (/ctl);
//   - the loader trick, on a drifted copy and on an image program;
//   - a drifted file opened, unlinked and exec'd by descriptor;
//   - a drifted copy in a memfd, exec'd by descriptor.
//
// The image's dynamic program still runs, runc can still exec into the
// container (it uses a memfd of its own), the host's vm.memfd_noexec and
// its execs from the bind's source directory are untouched, and the marks
// go with the container.
func TestHolesWithContainerd(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := containerdtest.Import(t, ctx, c, dynamicImage(t), "bulwark.test/holes:e2e")
	hostNoexec, _ := os.ReadFile("/proc/sys/vm/memfd_noexec")

	var col collector
	a, stop := startAgent(t, addr, ModePrevent, &col)
	fsMarks, mntMarks, err := a.fan.Marks()
	if err != nil {
		t.Fatal(err)
	}
	k := create(t, ctx, c, img, "holes")
	waitWatched(t, a, "holes")
	k.start(t, ctx)

	refused := func(what, cmd, want, reason string) {
		t.Helper()
		before := col.n.Load()
		if got := k.do(t, cmd); got != want {
			t.Fatalf("prevent: %s (%s): %q, want %q", what, cmd, got, want)
		}
		if reason == "" {
			return
		}
		e := col.last(before, "holes", "refused")
		if e == nil || e.Reason != reason || e.Image != img.Target().Digest.String() {
			t.Fatalf("prevent: %s: event %+v, want refused in container holes for %s", what, e, reason)
		}
	}
	for _, cmd := range []string{"copy /bin/probe /dev/drift", "copy /bin/probe /ctl/drift", "copy /bin/true /tmp/dtrue", "run /bin/true"} {
		if got := k.do(t, cmd); got != "ok" {
			t.Fatalf("prevent: %s: %s, want ok", cmd, got)
		}
	}
	s0 := a.Stats()
	refused("a drifted binary on /dev (tmpfs)", "run /dev/drift", "eperm", ReasonNotInImage)
	if s := a.Stats(); s.ByCgroup != s0.ByCgroup {
		t.Errorf("/dev's exec was attributed by cgroup (%d), want by its device, the container's own", s.ByCgroup-s0.ByCgroup)
	}
	refused("a drifted binary on a bind-mounted volume", "run /ctl/drift", "eperm", ReasonNotInImage)
	refused("the loader on a drifted copy", "ldso "+hostLoader+" /tmp/dtrue", "eperm", ReasonLoader)
	refused("the loader on an image program", "ldso "+hostLoader+" /bin/true", "eperm", ReasonLoader)
	refused("a deleted drifted file by /proc/self/fd", "deleted /bin/probe proc", "eperm", ReasonNotInImage)
	refused("a deleted drifted file by execveat", "deleted /bin/probe at", "eperm", ReasonNotInImage)
	refused("a memfd by /proc/self/fd", "memfd /bin/probe proc", "err permission denied", "")
	refused("a memfd by execveat", "memfd /bin/probe at", "err permission denied", "")
	if _, err := os.Stat(filepath.Join(filepath.Dir(k.sock), "ESCAPED")); err == nil {
		t.Fatal("prevent: a drifted exec ran")
	}
	if got := k.do(t, "run /bin/true"); got != "ok" {
		t.Fatalf("prevent: the image's dynamic program after the loader was refused: %s", got)
	}
	if code := execIn(t, ctx, k.task, "/bin/true"); code != 0 {
		t.Fatalf("prevent: runc exec into the container: exit %d, want 0", code)
	}
	if got, _ := os.ReadFile("/proc/sys/vm/memfd_noexec"); string(got) != string(hostNoexec) {
		t.Fatalf("the host's vm.memfd_noexec went from %q to %q", hostNoexec, got)
	}
	// The bind is marked on the container's mount only: the host runs the
	// same file unheld.
	before := a.Stats().Execs
	if err := runHost(filepath.Join(filepath.Dir(k.sock), "drift")); err != nil {
		t.Fatalf("the host running the bind's file: %v", err)
	}
	if s := a.Stats(); s.Execs != before {
		t.Errorf("the host's exec from the bind's source was held (%d events)", s.Execs-before)
	}

	fs, mnt, _ := a.fan.Marks()
	t.Logf("marks with the container: %d filesystems, %d mounts (before: %d, %d)", fs, mnt, fsMarks, mntMarks)
	if fs <= fsMarks || mnt <= mntMarks {
		t.Errorf("marks with the container: %d filesystems, %d mounts; want more than %d, %d", fs, mnt, fsMarks, mntMarks)
	}
	removeTask(t, ctx, k.task)
	fs, mnt = waitMarks(t, a, fsMarks, mntMarks)
	if fs != fsMarks || mnt != mntMarks {
		t.Errorf("marks after the container went: %d filesystems, %d mounts; want %d, %d", fs, mnt, fsMarks, mntMarks)
	}
	stop()

	// detect: the same execs run and are reported.
	var dcol collector
	a2, _ := startAgent(t, addr, ModeDetect, &dcol)
	d := create(t, ctx, c, img, "holesd")
	waitWatched(t, a2, "holesd")
	d.start(t, ctx)
	for _, cmd := range []string{"copy /bin/probe /dev/drift", "copy /bin/probe /ctl/drift2"} {
		if got := d.do(t, cmd); got != "ok" {
			t.Fatalf("detect: %s: %s", cmd, got)
		}
	}
	for cmd, reason := range map[string]string{"run /dev/drift": ReasonNotInImage, "run /ctl/drift2": ReasonNotInImage,
		"ldso " + hostLoader + " /bin/true": ReasonLoader, "deleted /bin/probe proc": ReasonNotInImage, "memfd /bin/probe proc": ""} {
		before := dcol.n.Load()
		if got := d.do(t, cmd); got != "ok" {
			t.Fatalf("detect: %s: %s, want ok", cmd, got)
		}
		if reason == "" {
			continue // memfd: fanotify sees nothing; the exec sensor reports it
		}
		if e := dcol.last(before, "holesd", "reported"); e == nil || e.Reason != reason {
			t.Fatalf("detect: %s: event %+v, want reported in holesd for %s", cmd, e, reason)
		}
	}
}

// last returns the first event after the first n of container with
// verdict, waiting like find.
func (c *collector) last(n int64, container, verdict string) *Event {
	for range 500 {
		c.mu.Lock()
		for i := int(n); i < len(c.events); i++ {
			if e := c.events[i]; e.Container == container && string(e.Verdict) == verdict {
				c.mu.Unlock()
				return &e
			}
		}
		c.mu.Unlock()
		sleepTick()
	}
	return nil
}

func sleepTick() { time.Sleep(10 * time.Millisecond) }

// execIn runs prog in the container as `ctr task exec` does (runc exec,
// which re-executes runc from a memfd of its own) and returns its status.
func execIn(t *testing.T, ctx context.Context, task client.Task, prog string) uint32 {
	t.Helper()
	p, err := task.Exec(ctx, "holes-exec", &specs.Process{Args: []string{prog}, Cwd: "/", Env: []string{"PATH=/bin"}}, cio.NullIO)
	if err != nil {
		t.Fatalf("exec into the container: %v", err)
	}
	defer p.Delete(ctx)
	ch, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("exec into the container: %v", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("exec into the container: %v", err)
	}
	return (<-ch).ExitCode()
}

// runHost runs the probe binary at path on the host.
func runHost(path string) error { return exec.Command(path, "noop").Run() }

// removeTask kills and deletes a container's task.
func removeTask(t *testing.T, ctx context.Context, task client.Task) {
	t.Helper()
	task.Kill(ctx, 9)
	if ch, err := task.Wait(ctx); err == nil {
		<-ch
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("deleting the task: %v", err)
	}
}

// waitMarks polls the listener's marks until they are back to fs and mnt,
// up to 10 s: the kernel drops marks as it frees mounts, after the fact.
func waitMarks(t *testing.T, a *Agent, fs, mnt int) (int, int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, m, err := a.fan.Marks()
		if err != nil {
			t.Fatal(err)
		}
		if (f == fs && m == mnt) || time.Now().After(deadline) {
			return f, m
		}
		sleepTick()
	}
}
