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
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/kerneltest"
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
			kerneltest.Skip(t, "reading the host's %s: %v", src, err)
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
	// A tmpfs the host mounted, bound in whole (a Kubernetes emptyDir of
	// medium Memory): not the container's own.
	vol := t.TempDir()
	if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(vol, unix.MNT_DETACH) })
	k := startWatched(t, ctx, c, img, a, "holes",
		oci.WithMounts([]specs.Mount{{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}}}))

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
	k.doAll(t, "copy /bin/probe /dev/drift", "copy /bin/probe /ctl/drift", "copy /bin/probe /vol/drift", "copy /bin/true /tmp/dtrue", "run /bin/true")
	s0 := a.Stats()
	refused("a drifted binary on /dev (tmpfs)", "run /dev/drift", "eperm", ReasonNotInImage)
	if s := a.Stats(); s.ByCgroup != s0.ByCgroup {
		t.Errorf("/dev's exec was attributed by cgroup (%d), want by its device, the container's own", s.ByCgroup-s0.ByCgroup)
	}
	refused("a drifted binary on a bind-mounted volume", "run /ctl/drift", "eperm", ReasonNotInImage)
	refused("a drifted binary on a host tmpfs bound in", "run /vol/drift", "eperm", ReasonNotInImage)
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
	for _, p := range []string{filepath.Join(filepath.Dir(k.sock), "drift"), filepath.Join(vol, "drift")} {
		if err := runHost(p); err != nil {
			t.Fatalf("the host running %s: %v", p, err)
		}
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
	a2, _ := startAgent(t, addr, ModeDetect, &dcol, withExecEvents)
	d := startWatched(t, ctx, c, img, a2, "holesd")
	// An image program and its interpreter, seen by the exec sensor too:
	// nothing to report.
	pe, before := a2.Stats().ProcessExecs, dcol.n.Load()
	d.doAll(t, "run /bin/true", "run /bin/tool")
	waitStats(a2, func(s Stats) bool { return s.ProcessExecs-pe >= 2 })
	time.Sleep(100 * time.Millisecond) // reports follow the answers
	if n := dcol.n.Load(); n != before {
		t.Fatalf("detect: image programs reported: %+v", dcol.after(before, func(Event) bool { return true }))
	}
	d.doAll(t, "copy /bin/probe /dev/drift", "copy /bin/probe /ctl/drift2")
	for cmd, reason := range map[string]string{"run /dev/drift": ReasonNotInImage, "run /ctl/drift2": ReasonNotInImage,
		"ldso " + hostLoader + " /bin/true": ReasonLoader, "deleted /bin/probe proc": ReasonNotInImage, "memfd /bin/probe proc": ReasonMemfd} {
		before := dcol.n.Load()
		if got := d.do(t, cmd); got != "ok" {
			t.Fatalf("detect: %s: %s, want ok", cmd, got)
		}
		if e := dcol.lastReason(before, "holesd", reason); e == nil || e.Verdict != VerdictReported {
			t.Fatalf("detect: %s: event %+v, want reported in holesd for %s", cmd, e, reason)
		}
	}
}

// last returns the first event after the first n of container with
// verdict, waiting like find.
func (c *collector) last(n int64, container, verdict string) *Event {
	return c.after(n, func(e Event) bool { return e.Container == container && string(e.Verdict) == verdict })
}

// lastReason is last by reason (the exec sensor's reports come apart from
// fanotify's).
func (c *collector) lastReason(n int64, container, reason string) *Event {
	return c.after(n, func(e Event) bool { return e.Container == container && e.Reason == reason })
}

func (c *collector) after(n int64, match func(Event) bool) *Event {
	for range 500 {
		c.mu.Lock()
		for i := int(n); i < len(c.events); i++ {
			if e := c.events[i]; match(e) {
				c.mu.Unlock()
				return &e
			}
		}
		c.mu.Unlock()
		sleepTick()
	}
	return nil
}

func withExecEvents(c *Config) { c.ExecEvents = true }

// startWatched creates a container, waits for a to watch it, and starts it.
func startWatched(t *testing.T, ctx context.Context, c *client.Client, img client.Image, a *Agent, id string, opts ...oci.SpecOpts) *ctr {
	t.Helper()
	k := create(t, ctx, c, img, id, opts...)
	waitWatched(t, a, id)
	k.start(t, ctx)
	return k
}

// doAll sends each command to the probe; each must answer ok.
func (k *ctr) doAll(t *testing.T, cmds ...string) {
	t.Helper()
	for _, cmd := range cmds {
		if got := k.do(t, cmd); got != "ok" {
			t.Fatalf("%s: %s: %s, want ok", k.id, cmd, got)
		}
	}
}

func sleepTick() { time.Sleep(10 * time.Millisecond) }

// execIn runs prog in the container as `ctr task exec` does (runc exec,
// which re-executes runc from a memfd of its own) and returns its status.
func execIn(t *testing.T, ctx context.Context, task client.Task, prog string) uint32 {
	t.Helper()
	return execArgs(t, ctx, task, "holes-exec", prog)
}

// runHost runs the probe binary at path on the host.
func runHost(path string) error { return exec.Command(path, "noop").Run() }

// removeTask kills and deletes a container's task.
func removeTask(t testing.TB, ctx context.Context, task client.Task) {
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

// TestUserNamespaceMounts: what a process that can make a user and mount
// namespace (no capability needed where the node and the container's
// seccomp profile allow it) does against prevent. A copy of the root
// overlay stays held (a filesystem mark); a drifted binary on a fresh
// tmpfs, or on the namespace's copy of a bind, no mark holds: the exec
// sensor, on by default in prevent with fanotify, kills it before its
// first instruction (it would write ESCAPED first) and it is reported
// refused, unheld-mount; the container's gap is closed. An image program
// from the namespace's copy of the root runs. Under containerd's default
// seccomp profile the namespace cannot be made, and the agent names no gap.
func TestUserNamespaceMounts(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col, func(c *Config) { c.ExecEventsDefault = true })
	if a.procMon.Load() == nil {
		t.Fatal("prevent with fanotify, --exec-events not given: the exec sensor is off")
	}
	open := startWatched(t, ctx, c, img, a, "userns")
	open.doAll(t, "copy /bin/probe /ctl/drift", "copy /bin/probe /tmp/drift")
	if !userNamespacesOpen() {
		kerneltest.Skip(t, "this node refuses unprivileged user namespaces")
	}
	if got := open.do(t, "userns /bin/probe /tmp/drift"); got != "eperm" {
		t.Fatalf("the root overlay from a mount namespace of the process's own: %s, want eperm", got)
	}
	if info, _ := a.Container("userns"); info.MountGap != "" {
		t.Fatalf("no seccomp, user namespaces open, the exec sensor kills: gap %q, want none", info.MountGap)
	}
	escaped := filepath.Join(filepath.Dir(open.sock), "ESCAPED")
	for _, cmd := range []string{"userns /bin/probe tmpfs", "userns /bin/probe /ctl/drift"} {
		before := col.n.Load()
		if got := open.do(t, cmd); got != "killed" {
			t.Fatalf("prevent: %s: %s, want killed", cmd, got)
		}
		if _, err := os.Stat(escaped); err == nil {
			t.Fatalf("prevent: %s: the drifted program ran before the kill", cmd)
		}
		if e := col.lastReason(before, "userns", ReasonUnheld); e == nil || e.Verdict != VerdictRefused {
			t.Fatalf("prevent: %s: event %+v, want refused as %s", cmd, e, ReasonUnheld)
		}
	}
	if e := col.lastReason(0, "userns", ReasonNotInImage); e == nil || !strings.HasSuffix(e.Path, "/tmp/drift") {
		t.Fatalf("the root overlay from a namespace of the process's own: event %+v, want refused /tmp/drift", e)
	}
	// Not killed: an image program from the namespace's copy of the root,
	// the container's own execs, runc exec into it.
	if got := open.do(t, "userns /bin/probe /bin/probe"); got != "ok" {
		t.Fatalf("prevent: the image's program from a namespace of the process's own: %s, want ok", got)
	}
	os.Remove(escaped)
	open.doAll(t, "run /bin/probe")
	if code := execIn(t, ctx, open.task, "/bin/probe"); code != 2 { // its usage: it ran
		t.Fatalf("prevent: runc exec into the container: exit %d, want 2", code)
	}
	if s := a.Stats(); s.ProcessKilled < 2 {
		t.Fatalf("agent stats %+v, want 2 killed", s)
	}
	if cs := a.canary.status(); !cs.OK || cs.Runs == 0 { // its drifted exec is in the agent's cgroup: not killed
		t.Fatalf("the canary with the exec sensor's kill: %+v", cs)
	}

	shut := startWatched(t, ctx, c, img, a, "usernsdef", seccomp.WithDefaultProfile())
	if info, _ := a.Container("usernsdef"); info.MountGap != "" {
		t.Fatalf("a container under the default seccomp profile: gap %q, want none", info.MountGap)
	}
	for _, cmd := range []string{"copy /bin/probe /ctl/drift2", "userns /bin/probe /ctl/drift2", "userns /bin/probe tmpfs"} {
		got := shut.do(t, cmd)
		if strings.HasPrefix(cmd, "copy") && got != "ok" || strings.HasPrefix(cmd, "userns") && !strings.HasPrefix(got, "err namespace") {
			t.Fatalf("default seccomp profile: %s: %s, want the namespace refused", cmd, got)
		}
		t.Logf("default seccomp profile: %s: %s", cmd, got)
	}
}

// TestMountsAttachedLater: a tmpfs mounted in a running container (by a
// process with CAP_SYS_ADMIN; a volume propagated from the host is the
// same event) is marked once the kernel reports it, and a drifted exec
// from it is refused; so is one from a noexec mount remounted exec.
func TestMountsAttachedLater(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col)
	if a.mountWatch == nil {
		kerneltest.Skip(t, "the kernel reports no mount attachments (Linux 6.15)")
	}
	k := startWatched(t, ctx, c, img, a, "later", oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	fs0, mnt0, _ := a.fan.Marks()
	start := time.Now()
	k.doAll(t, "mount /late")
	for {
		if fs, mnt, _ := a.fan.Marks(); fs+mnt > fs0+mnt0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the mount attached later was never marked")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the new mount was marked %v after the mount call returned", time.Since(start).Round(100*time.Microsecond))
	k.doAll(t, "copy /bin/probe /late/drift")
	if got := k.do(t, "run /late/drift"); got != "eperm" {
		t.Fatalf("a drifted exec from a tmpfs mounted after adoption: %s, want eperm", got)
	}
	// A noexec mount made exec again (a remount attaches nothing): held
	// from the start.
	k.doAll(t, "remount /dev/shm", "copy /bin/probe /dev/shm/drift")
	if got := k.do(t, "run /dev/shm/drift"); got != "eperm" {
		t.Fatalf("a drifted exec from /dev/shm remounted exec: %s, want eperm", got)
	}
}
