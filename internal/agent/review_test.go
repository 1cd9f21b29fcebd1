package agent

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// Tests from the attacker review of 2026-12-03 (docs/runtime.md).

// TestSensorHeldBounded: a container with CAP_SYS_ADMIN that binds and
// unmounts a host directory over and over leaves nothing behind in the
// exec sensor's map of what is held, which every container shares (each
// mount had its unique id added, never released: 262144 such mounts filled
// it, and a container adopted after that had no kill); and one that makes
// more mounts than maxMountsPerContainer at once has only that many marked.
func TestSensorHeldBounded(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col, func(c *Config) { c.ExecEventsDefault = true })
	if a.mountWatch == nil {
		kerneltest.Skip(t, "the kernel reports no mount attachments (Linux 6.15)")
	}
	m := a.procMon.Load()
	if m == nil {
		kerneltest.Skip(t, "no exec sensor")
	}
	k := startWatched(t, ctx, c, img, a, "heldflood", oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	marked := func() (cgroup uint64, n int) {
		a.mu.RLock()
		defer a.mu.RUnlock()
		c := a.containers["heldflood"]
		return c.cgroup, len(c.devs) + len(c.mounts)
	}
	waitMarked := func(want func(int) bool, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; sleepTick() {
			if _, n := marked(); want(n) {
				return
			}
			if time.Now().After(deadline) {
				_, n := marked()
				t.Fatalf("%s: %d mounts marked", what, n)
			}
		}
	}
	cg, n0 := marked()
	_, mounts0, err := m.Held(cg)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	for range rounds {
		k.doAll(t, "bind /ctl /again")
		waitMarked(func(n int) bool { return n > n0 }, "the bind was never marked")
		k.doAll(t, "umount /again")
		waitMarked(func(n int) bool { return n == n0 }, "the unmounted bind is still marked")
	}
	if _, mounts, err := m.Held(cg); err != nil || mounts != mounts0 {
		t.Fatalf("after %d binds unmounted: the exec sensor holds %d mounts (%v), want %d as before", rounds, mounts, err, mounts0)
	}

	k.doAll(t, "binds /ctl /many 1100")
	waitMarked(func(n int) bool { return n >= maxMountsPerContainer }, "the binds were never marked")
	time.Sleep(200 * time.Millisecond) // later reports mark no more
	if _, n := marked(); n > maxMountsPerContainer {
		t.Fatalf("%d mounts marked, want at most %d", n, maxMountsPerContainer)
	}
	if devs, mounts, err := m.Held(cg); err != nil || devs+mounts > maxMountsPerContainer+1 { // and its root
		t.Fatalf("the exec sensor holds %d filesystems and %d mounts (%v), want at most %d", devs, mounts, err, maxMountsPerContainer+1)
	}
	// What is past the bound is not held: a drifted copy reached through
	// it is killed (the directory is a host bind: no filesystem mark).
	k.doAll(t, "copy /bin/probe /ctl/drift")
	if got := k.do(t, "run /many/1099/drift"); got == "ok" {
		t.Fatal("a drifted copy through a mount past the bound ran")
	}
}

// TestMemfdNoexecLowered: vm.memfd_noexec is not a floor on Linux 6.6 and
// later (its ratchet became a hierarchy: a pid namespace may not go below
// its parent, but may lower its own): a container with CAP_SYS_ADMIN over
// its pid namespace (here CAP_SYS_ADMIN; a user-namespaced one with it in
// its user namespace alike) mounts a proc of its own, sets 0 and execs a
// memfd. In prevent the exec sensor kills it, refused as memfd; without
// the sensor it runs and the container's gap says so.
func TestMemfdNoexecLowered(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	sysAdmin := oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"})

	var col collector
	a, stop := startAgent(t, addr, ModePrevent, &col, func(c *Config) { c.ExecEventsDefault = true })
	if a.procMon.Load() == nil {
		kerneltest.Skip(t, "no exec sensor")
	}
	k := startWatched(t, ctx, c, img, a, "memfdlow", sysAdmin)
	if got := k.do(t, "memfd /bin/probe proc"); got == "ok" {
		t.Fatal("a memfd exec ran with vm.memfd_noexec set")
	}
	if got := k.do(t, "memfdnoexec 0"); got != "value 0" {
		t.Fatalf("lowering vm.memfd_noexec in the container: %s (the kernel keeps it: update docs/runtime.md)", got)
	}
	before := col.n.Load()
	if got := k.do(t, "memfd /bin/probe proc"); got != "err exit -1" {
		t.Fatalf("prevent with the sensor, vm.memfd_noexec lowered: a memfd exec: %s, want killed", got)
	}
	if e := col.lastReason(before, "memfdlow", ReasonMemfd); e == nil || e.Verdict != VerdictRefused {
		t.Fatalf("event %+v, want refused as %s", e, ReasonMemfd)
	}
	removeTask(t, ctx, k.task)
	stop()

	var ocol collector
	o, _ := startAgent(t, addr, ModePrevent, &ocol) // --exec-events=false
	off := startWatched(t, ctx, c, img, o, "memfdlowoff", sysAdmin)
	if info, _ := o.Container("memfdlowoff"); !strings.Contains(info.MountGap, "memfd") {
		t.Fatalf("prevent without the exec sensor, CAP_SYS_ADMIN: gap %q names no memfd", info.MountGap)
	}
	if got := off.do(t, "memfdnoexec 0"); got != "value 0" {
		t.Fatalf("lowering vm.memfd_noexec without the sensor: %s", got)
	}
	t.Logf("known gap without the exec sensor: memfd exec after lowering: %s", off.do(t, "memfd /bin/probe proc"))
}

// TestDeviceReuse: a container with CAP_SYS_ADMIN mounts a tmpfs, waits
// for the agent to mark it (the exec sensor then holds its device number),
// unmounts it lazily and mounts a fresh tmpfs, unmarked, and runs a
// drifted copy from it before the agent reads its mounts again (the test
// keeps the agent from it by holding its lock: the race, made certain).
// Without the agent's pin the fresh tmpfs got the marked one's number,
// which the sensor still took for held: the copy ran, in every round.
func TestDeviceReuse(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col, func(c *Config) { c.ExecEventsDefault = true })
	if a.mountWatch == nil || a.procMon.Load() == nil {
		kerneltest.Skip(t, "no mount reports or no exec sensor")
	}
	k := startWatched(t, ctx, c, img, a, "devreuse", oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	for i := range 5 {
		p := "/r" + strconv.Itoa(i)
		k.doAll(t, "mount "+p)
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(procRoot, strconv.Itoa(int(k.task.Pid())), "root", p), &st); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); ; sleepTick() {
			a.mu.RLock()
			marked := slices.Contains(a.containers["devreuse"].devs, st.Dev)
			a.mu.RUnlock()
			if marked {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the tmpfs was never marked")
			}
		}
		resume := pauseMounts(a) // no mount table read meanwhile
		got := k.do(t, "reuse /bin/probe "+p+" "+p+"b")
		resume()
		t.Logf("round %d: %s", i, got)
		if !strings.HasPrefix(got, "killed") {
			t.Errorf("round %d: a drifted copy on a fresh tmpfs: %s, want killed", i, got)
		}
	}
}

// TestIdleListsBounded: the allowlists of digests no container runs any
// more are not kept without end (every image ever run stayed in memory);
// those of running containers and of learning windows are kept.
func TestIdleListsBounded(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler), containers: map[string]*container{}, byDev: map[uint64]*container{},
		byCgroup: map[uint64]*container{}, lists: map[string]*allowlist.List{}, learning: map[string]*learning{}}
	digest := func(i int) string { return "sha256:" + hexOf([32]byte{byte(i), byte(i >> 8)}) }
	for i := range 500 {
		a.lists[digest(i)] = &allowlist.List{Image: digest(i)}
	}
	a.containers["run0"] = &container{id: "run0", image: digest(0)}
	a.containers["run1"] = &container{id: "run1", image: digest(1)}
	a.containers["gone"] = &container{id: "gone", image: digest(3)}
	a.learning[digest(2)] = &learning{image: digest(2)}
	a.forget("gone")
	if len(a.lists) > maxIdleLists+2 {
		t.Fatalf("%d lists kept after a container went, want at most %d idle and the 2 running", len(a.lists), maxIdleLists)
	}
	for _, i := range []int{0, 1, 2} {
		if a.lists[digest(i)] == nil {
			t.Errorf("the list of %s (running or learning) was dropped", digest(i))
		}
	}
}

// TestAdoptPidReused: a task event whose process number now belongs to
// another container (the init ended before adoption and the number went
// to a process of the other) is not adopted: before, the agent marked the
// other container's root and mapped its device to the first, whose
// allowlist and mode its execs then got.
func TestAdoptPidReused(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col)
	b := startWatched(t, ctx, c, img, a, "pidother")
	startWatched(t, ctx, c, img, a, "pidfirst")
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(procRoot, strconv.Itoa(int(b.task.Pid())), "root"), &st); err != nil {
		t.Fatal(err)
	}
	if err := a.adopt(ctx, testNS, "pidfirst", b.task.Pid()); err == nil {
		t.Error("adopting a container by another container's process: no error")
	}
	a.mu.RLock()
	owner := a.byDev[st.Dev]
	a.mu.RUnlock()
	if owner == nil || owner.id != "pidother" {
		t.Fatalf("the other container's root device maps to %+v, want pidother", owner)
	}
}

// TestNamesAnywhere: a rule that relaxes the mode by a name (pod,
// workload, container) without naming a namespace is said at start: any
// pod creator of any namespace can take it by naming her pod so.
func TestNamesAnywhere(t *testing.T) {
	rules, err := ParseModeRules("container=istio-proxy mode=detect, namespace=dev pod=debug-* mode=off, namespace=* workload=legacy mode=off, " +
		"container=side mode=prevent, label:tier=dev mode=off, namespace=payments mode=detect")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mode: ModePrevent, ModeRules: ModeRules{Rules: rules}}
	got := cfg.namesAnywhere()
	want := []string{"container=istio-proxy mode=detect", "namespace=* workload=legacy mode=off"}
	if !slices.Equal(got, want) {
		t.Fatalf("rules said to relax by name anywhere: %q, want %q", got, want)
	}
	var buf strings.Builder
	cfg.Log = slog.New(slog.NewTextHandler(&buf, nil))
	a, err := New(cfg)
	if err != nil {
		kerneltest.Skip(t, "starting the agent here: %v", err)
	}
	if a.fan != nil {
		a.fan.Close()
	}
	if !strings.Contains(buf.String(), "relaxes by name in every namespace") || !strings.Contains(buf.String(), "istio-proxy") {
		t.Fatalf("not said at start: %s", buf.String())
	}
}

// TestMountGapBoundingSet: a process that runs as a user has no effective
// capability, but a setuid program it runs gets back its bounding set:
// with CAP_SYS_ADMIN there (and no no_new_privs) its gap is named (it was
// not: only the effective set was read).
func TestMountGapBoundingSet(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		kerneltest.Skip(t, "starting a process as nobody: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if got := mountGap(cmd.Process.Pid); got != gapSysAdmin {
		t.Fatalf("a user's process with CAP_SYS_ADMIN in its bounding set: gap %q, want %q", got, gapSysAdmin)
	}
}

// TestMountedThenRun: the window between a mount's attachment and the
// agent's mark. A container with CAP_SYS_ADMIN mounts a fresh tmpfs and
// at once runs a drifted copy of a program from it, round after round: a
// static one (the probe) and a dynamic one (/bin/true, whose ELF
// interpreter's load is a fanotify event the agent answers in the middle
// of the exec). Each exec must end refused (EPERM: marked first) or killed
// (the exec sensor: not held yet). Before the sensor knew when an exec
// began, one opened before the mark that reached the sensor after the
// agent held the mount ran: 3 (static) and 13 (dynamic) rounds in 100.
func TestMountedThenRun(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := containerdtest.Import(t, ctx, c, dynamicImage(t), "bulwark.test/holes:e2e")
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col, func(c *Config) { c.ExecEventsDefault = true })
	if a.mountWatch == nil || a.procMon.Load() == nil {
		kerneltest.Skip(t, "no mount reports or no exec sensor")
	}
	k := startWatched(t, ctx, c, img, a, "mountrun", oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	if !a.procMon.Load().Epochs() {
		kerneltest.Skip(t, "no syscall tracepoints: the exec sensor cannot tell when an exec began")
	}
	for _, prog := range []string{"/bin/probe", "/bin/true"} {
		got := k.do(t, "mountrun "+prog+" /m"+strings.ReplaceAll(prog, "/", "-")+" 100")
		t.Logf("%s from a tmpfs mounted just before, 100 rounds: %s", prog, got)
		if !strings.HasPrefix(got, "map[") || strings.Contains(got, "ok:") {
			t.Errorf("%s: %s, want every round refused or killed", prog, got)
		}
	}
	// A mount held later still serves execs that begin after: the image's
	// program copied there runs.
	k.doAll(t, "mount /late", "same /bin/probe /late/probe")
	for deadline := time.Now().Add(5 * time.Second); ; sleepTick() {
		if got := k.do(t, "run /late/probe"); got == "ok" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the image's program on a mount attached later: %s, want ok once marked", got)
		}
	}
}

// TestCgroupNamedAfterAnother: a container with CAP_SYS_ADMIN makes a
// cgroup below its own named after another container (in detect) and
// moves in, then runs a drifted copy from a bind-mounted host directory
// (attributed by cgroup): it must still be judged as itself, in prevent.
// The exec was attributed to the other container and ran.
func TestCgroupNamedAfterAnother(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	rules, err := ParseModeRules("container=cgother mode=detect")
	if err != nil {
		t.Fatal(err)
	}
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col, func(c *Config) { c.ModeRules = ModeRules{Rules: rules} })
	startWatched(t, ctx, c, img, a, "cgother")
	k := startWatched(t, ctx, c, img, a, "cgown", oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	moved := k.do(t, "cgmove cgother")
	t.Logf("cgmove: %s", moved)
	if !strings.HasPrefix(moved, "moved ") || strings.HasPrefix(moved, "moved 0 ") {
		kerneltest.Skip(t, "the probe could not move into a cgroup of its own: %s", moved)
	}
	k.doAll(t, "copy /bin/probe /ctl/drift")
	before := col.n.Load()
	if got := k.do(t, "run /ctl/drift"); got != "eperm" {
		t.Errorf("a drifted copy run from a cgroup named after a detect container: %s, want eperm", got)
	}
	if e := col.after(before, func(e Event) bool { return strings.HasSuffix(e.Path, "/drift") }); e == nil || e.Container != "cgown" {
		t.Fatalf("event %+v, want it of cgown", e)
	}
}
