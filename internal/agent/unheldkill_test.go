package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
	"github.com/bulwark-sec/bulwark/internal/fanotify"
	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestUnheldKillModes: the exec sensor's kill in the other cases.
//   - prevent, a container in the host's pid namespace (vm.memfd_noexec
//     cannot be set there): a memfd exec is killed and reported refused,
//     reason memfd; runc exec still works (runc's memfd is exec'd in the
//     host's cgroup).
//   - detect with the sensor: the drifted binary on a fresh user-namespace
//     tmpfs runs (it writes ESCAPED) and is reported, unheld-mount.
//   - prevent with --exec-events=false: nothing kills it, and the
//     container's gap is named.
//   - prevent in a learning window: it runs (reported), and is killed once
//     the window locks.
func TestUnheldKillModes(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	if !userNamespacesOpen() {
		kerneltest.Skip(t, "this node refuses unprivileged user namespaces")
	}

	var pcol collector
	a, stop := startAgent(t, addr, ModePrevent, &pcol, func(c *Config) { c.ExecEventsDefault = true })
	hp := startWatched(t, ctx, c, img, a, "hostpid", oci.WithHostNamespace(specs.PIDNamespace))
	before := pcol.n.Load()
	if got := hp.do(t, "memfd /bin/probe proc"); got != "err exit -1" { // the probe's status of a signalled child
		t.Fatalf("prevent, host pid namespace: a memfd exec: %s, want killed", got)
	}
	if e := pcol.lastReason(before, "hostpid", ReasonMemfd); e == nil || e.Verdict != VerdictRefused {
		t.Fatalf("prevent, host pid namespace: a memfd exec: event %+v, want refused as %s", e, ReasonMemfd)
	}
	if code := execIn(t, ctx, hp.task, "/bin/probe"); code != 2 {
		t.Fatalf("prevent, host pid namespace: runc exec: exit %d, want 2 (its usage)", code)
	}
	removeTask(t, ctx, hp.task)
	stop()

	var dcol collector
	d, stop := startAgent(t, addr, ModeDetect, &dcol, withExecEvents)
	k := startWatched(t, ctx, c, img, d, "unhelddet")
	before = dcol.n.Load()
	if got := k.do(t, "userns /bin/probe tmpfs"); got != "ok" {
		t.Fatalf("detect: the drifted binary on a user-namespace tmpfs: %s, want ok", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(k.sock), "ESCAPED")); err != nil {
		t.Fatalf("detect: the drifted binary did not run: %v", err)
	}
	if e := dcol.lastReason(before, "unhelddet", ReasonUnheld); e == nil || e.Verdict != VerdictReported {
		t.Fatalf("detect: event %+v, want reported as %s", e, ReasonUnheld)
	}
	removeTask(t, ctx, k.task)
	stop()

	var ocol collector
	o, _ := startAgent(t, addr, ModePrevent, &ocol) // --exec-events=false
	if o.procMon.Load() != nil {
		t.Fatal("prevent with --exec-events=false: the exec sensor runs")
	}
	off := startWatched(t, ctx, c, img, o, "unheldoff")
	if info, _ := o.Container("unheldoff"); info.MountGap == "" {
		t.Fatal("prevent without the exec sensor: no gap named")
	}
	t.Logf("known gap without the exec sensor: userns tmpfs: %s", off.do(t, "userns /bin/probe tmpfs"))
	removeTask(t, ctx, off.task)

	var lcol collector
	window := 2 * time.Second
	l, _ := startAgent(t, addr, ModePrevent, &lcol, func(c *Config) {
		c.ExecEventsDefault, c.Learn = true, LearnConfig{Window: window, Dir: t.TempDir()}
	})
	start := time.Now()
	lk := startWatched(t, ctx, c, img, l, "unheldlearn")
	before = lcol.n.Load()
	if got := lk.do(t, "userns /bin/probe tmpfs"); got != "ok" {
		t.Fatalf("prevent, learning window open: %s, want ok", got)
	}
	if e := lcol.lastReason(before, "unheldlearn", ReasonUnheld); e == nil || e.Verdict != VerdictReported {
		t.Fatalf("prevent, learning window open: event %+v, want reported as %s", e, ReasonUnheld)
	}
	time.Sleep(time.Until(start.Add(window + time.Second)))
	if got := lk.do(t, "userns /bin/probe tmpfs"); got != "killed" {
		t.Fatalf("prevent, learning window locked: %s, want killed", got)
	}
}

// TestUnheldKillDetached: a container with CAP_SYS_ADMIN runs a drifted
// copy from a tmpfs mounted nowhere (fsopen, fsmount), which no mark can
// hold: in prevent the exec sensor kills it before it runs and it is
// reported refused, unheld-mount. Its gap stays named: it could leave its
// cgroup. A tmpfs it mounts later is held once marked: the image's program
// copied there runs (fanotify allows it by content; the sensor does not
// kill it).
func TestUnheldKillDetached(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	var col collector
	a, _ := startAgent(t, addr, ModePrevent, &col, func(c *Config) { c.ExecEventsDefault = true })
	k := startWatched(t, ctx, c, img, a, "detached", oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	if got := k.do(t, "fsmount /bin/probe"); got != "killed" {
		t.Fatalf("a drifted copy on a detached tmpfs: %s, want killed", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(k.sock), "ESCAPED")); err == nil {
		t.Fatal("the drifted program ran before the kill")
	}
	if e := col.lastReason(0, "detached", ReasonUnheld); e == nil || e.Verdict != VerdictRefused {
		t.Fatalf("event %+v, want refused as %s", e, ReasonUnheld)
	}
	if info, _ := a.Container("detached"); info.MountGap != killGap(gapSysAdmin) {
		t.Fatalf("gap %q, want %q", info.MountGap, killGap(gapSysAdmin))
	}
	if a.mountWatch == nil {
		kerneltest.Skip(t, "the kernel reports no mount attachments (Linux 6.15)")
	}
	held := func() int { // what the sensor was told it holds, told under a.mu
		a.mu.RLock()
		defer a.mu.RUnlock()
		c := a.containers["detached"]
		return len(c.devs) + len(c.mounts)
	}
	held0 := held()
	k.doAll(t, "mount /late")
	for deadline := time.Now().Add(5 * time.Second); ; sleepTick() {
		if held() > held0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mount attached later was never marked")
		}
	}
	k.doAll(t, "same /bin/probe /late/probe", "run /late/probe")
}

// TestExecEventsDefault: --exec-events given or not (flag, bare flag,
// false, environment-style Set), and the sensor turned on only for prevent
// with fanotify when it was not given.
func TestExecEventsDefault(t *testing.T) {
	for _, c := range []struct {
		args     []string
		env      string
		set, val bool
	}{{nil, "", false, false}, {[]string{"--exec-events"}, "", true, true}, {[]string{"--exec-events=false"}, "", true, false},
		{nil, "false", true, false}, {nil, "maybe", false, false}} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		o := execEventsFlag(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if c.env != "" { // as applyConfig sets it from the environment
			if err := fs.Lookup("exec-events").Value.Set(c.env); (err != nil) != (c.env == "maybe") {
				t.Fatalf("Set(%q): %v", c.env, err)
			}
		}
		if o.set != c.set || o.v != c.val {
			t.Errorf("%v %q: set %v value %v, want %v %v", c.args, c.env, o.set, o.v, c.set, c.val)
		}
	}
	for _, c := range []struct {
		mode         Mode
		fan, dflt, v bool
		want         bool
	}{{ModePrevent, true, true, false, true}, {ModeDetect, true, true, false, false}, {ModePrevent, false, true, false, false},
		{ModePrevent, true, false, false, false}, {ModeDetect, true, false, true, true}} {
		a := &Agent{cfg: Config{Mode: c.mode, ExecEventsDefault: c.dflt, ExecEvents: c.v}, log: slog.New(slog.DiscardHandler)}
		if c.fan {
			a.fan = &fanotify.Listener{}
		}
		a.defaultExecEvents()
		if a.cfg.ExecEvents != c.want {
			t.Errorf("%+v: exec events %v", c, a.cfg.ExecEvents)
		}
	}
}
