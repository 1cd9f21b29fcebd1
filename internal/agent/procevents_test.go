package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// TestProcessEventsWithContainerd: with --exec-events the exec sensor's
// events of a real container's processes (a run of an image binary: its
// exec and its exit) are attributed to the container by cgroup v2 id and
// counted; the node's other processes are not. Executables written into
// the container are reported.
func TestProcessEventsWithContainerd(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	k := create(t, ctx, c, img, "pe")
	k.start(t, ctx)
	a, err := New(Config{Mode: ModeDetect, Address: addr, Namespaces: []string{testNS}, CanaryDir: t.TempDir(), ExecEvents: true,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitWatched(t, a, "pe")
	deadline := time.Now().Add(10 * time.Second)
	for a.procMon.Load() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	base := a.Stats()
	for range 3 {
		if got := k.do(t, "run /bin/tool"); got != "ok" {
			t.Fatalf("run /bin/tool: %s", got)
		}
	}
	s := waitStats(a, func(s Stats) bool {
		return s.ProcessExecs-base.ProcessExecs >= 3 && s.ProcessExits-base.ProcessExits >= 3
	})
	if s.ProcessExecs-base.ProcessExecs < 3 || s.ProcessExits-base.ProcessExits < 3 {
		t.Fatalf("process events of the container: %d execs, %d exits, want 3 each (lost %d)",
			s.ProcessExecs-base.ProcessExecs, s.ProcessExits-base.ProcessExits, s.ProcessLost)
	}
	if s.ProcessExecs-base.ProcessExecs > 20 {
		t.Fatalf("%d execs attributed to the container: the node's processes leak in", s.ProcessExecs-base.ProcessExecs)
	}
	t.Logf("container pe: %d execs, %d exits seen by the sensor", s.ProcessExecs-base.ProcessExecs, s.ProcessExits-base.ProcessExits)

	// An executable written into the container (copied, then modified) is
	// reported after the fact; writing a plain file is not.
	for _, cmd := range []string{"copy /bin/probe /tmp/new", "modify /bin/tool"} {
		if got := k.do(t, cmd); got != "ok" {
			t.Fatalf("%s: %s", cmd, got)
		}
	}
	s = waitStats(a, func(s Stats) bool { return s.ExecutablesWritten-base.ExecutablesWritten >= 2 })
	if w := s.ExecutablesWritten - base.ExecutablesWritten; w != 2 {
		t.Fatalf("executables written: %d, want 2 (the copy and the modified image binary)", w)
	}
}
