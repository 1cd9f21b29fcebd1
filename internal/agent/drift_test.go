package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// driftExecs is how many drifted execs the storm attempts
// (BULWARK_AGENT_DRIFT_EXECS overrides).
func driftExecs(t *testing.T) int {
	if s := os.Getenv("BULWARK_AGENT_DRIFT_EXECS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("BULWARK_AGENT_DRIFT_EXECS=%q: want a positive count", s)
		}
		return n
	}
	return 100_000
}

// TestDriftWithContainerd runs real containers under Debian's containerd and
// runc with the agent in prevent, then in detect:
//   - a container started before the agent is attributed (container, digest);
//   - prevent: the entrypoint and an unmodified image binary run; a binary
//     copied into the container and a modified image binary fail with EPERM
//     and are reported as refused; a storm of drifted execs has no escape;
//   - the agent gone: execs are not held (fail open, by the kernel's rule);
//   - detect: the same execs run and are reported with container and digest.
func TestDriftWithContainerd(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	digest := img.Target().Digest.String()

	pre := create(t, ctx, c, img, "pre")
	pre.start(t, ctx)

	var col collector
	a, stop := startAgent(t, addr, ModePrevent, &col)
	if st, why := a.Enforcement(); st != "enforcing (fanotify)" {
		t.Fatalf("prevent on this host: state %q (%s), want enforcing (fanotify) proven by the canary", st, why)
	}
	info := waitWatched(t, a, "pre")
	if info.Image != digest || info.Namespace != testNS || info.Allowed != 1 {
		t.Fatalf("container started before the agent: %+v, want image %s in %s with 1 allowed content", info, digest, testNS)
	}

	// A container created after the agent: watched from its create event,
	// before its entrypoint starts.
	post := create(t, ctx, c, img, "post")
	waitWatched(t, a, "post")
	post.start(t, ctx) // the entrypoint runs under prevent

	if got := pre.do(t, "run /bin/tool"); got != "ok" {
		t.Fatalf("prevent: an image binary: %s, want ok", got)
	}
	if got := pre.do(t, "copy /bin/probe /tmp/drift"); got != "ok" {
		t.Fatalf("copying a binary into the container: %s", got)
	}
	if got := pre.do(t, "run /tmp/drift"); got != "eperm" {
		t.Fatalf("prevent: a copied binary: %s, want eperm", got)
	}
	e := col.find("pre", "refused")
	if e == nil || e.Image != digest || e.Reason != ReasonNotInImage || e.Digest == "" {
		t.Fatalf("prevent: refused event %+v, want container pre, image %s", e, digest)
	}
	t.Logf("refused: %+v", *e)
	if got := pre.do(t, "modify /bin/tool"); got != "ok" {
		t.Fatalf("modifying an image binary: %s", got)
	}
	if got := pre.do(t, "run /bin/tool"); got != "eperm" {
		t.Fatalf("prevent: a modified image binary: %s, want eperm", got)
	}
	if got := pre.do(t, "run /bin/probe"); got != "ok" {
		t.Fatalf("prevent: the unmodified entrypoint binary after the other changed: %s", got)
	}

	// The storm: every attempt must fail with EPERM; one success is an escape.
	n := driftExecs(t)
	if got := post.do(t, "copy /bin/probe /tmp/drift"); got != "ok" {
		t.Fatalf("copying into post: %s", got)
	}
	before := a.Stats()
	start := time.Now()
	got := post.do(t, fmt.Sprintf("execloop /tmp/drift %d", n))
	el := time.Since(start)
	if want := fmt.Sprintf("eperm=%d other=0", n); got != want {
		t.Fatalf("drift storm: %q, want %q (an empty answer is an escape)", got, want)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(post.sock), "ESCAPED")); err == nil {
		t.Fatal("drift storm: a drifted exec ran")
	}
	after := waitStats(a, func(s Stats) bool { return s.Refused-before.Refused >= int64(n) })
	if r := after.Refused - before.Refused; r != int64(n) {
		t.Errorf("the agent refused %d of %d execs", r, n)
	}
	t.Logf("drift storm: %d execs refused, 0 escapes, in %v (%.0f refused execs/s); digests hashed %d; attributed by cgroup %d (the rest by filesystem)",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), after.Hashed, after.ByCgroup-before.ByCgroup)

	// The agent goes away: nothing hangs, drift runs (fanotify fails open).
	stop()
	if got := pre.do(t, "run /tmp/drift"); got != "ok" {
		t.Fatalf("after the agent stopped: %s, want the exec to run unheld", got)
	}

	var dcol collector
	a2, _ := startAgent(t, addr, ModeDetect, &dcol)
	waitWatched(t, a2, "pre")
	for _, p := range []string{"/tmp/drift", "/bin/tool"} {
		if got := pre.do(t, "run "+p); got != "ok" {
			t.Fatalf("detect: %s: %s, want ok", p, got)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); dcol.n.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := dcol.n.Load(); n != 2 {
		t.Errorf("detect: %d events, want 2", n)
	}
	e = dcol.find("pre", "reported")
	if e == nil || e.Image != digest || e.Namespace != testNS || e.PID == 0 {
		t.Fatalf("detect: reported event %+v, want container pre, image %s", e, digest)
	}
	if got := pre.do(t, "run /bin/probe"); got != "ok" || dcol.n.Load() != 2 {
		t.Fatalf("detect: the entrypoint binary: %s, %d events", got, dcol.n.Load())
	}
}
