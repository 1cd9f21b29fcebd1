package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// testNS is the containerd namespace of the tests, one per test process:
// runc keeps its state per namespace under /run/containerd/runc whatever
// containerd's own state directory is, so two test processes (two
// worktrees, CI and a developer) would otherwise collide on container ids.
var testNS = "bulwark-test-" + strconv.Itoa(os.Getpid())

// buildProbe compiles testdata/probe, a static binary.
func buildProbe(t testing.TB) []byte { return containerdtest.BuildStatic(t, "./testdata/probe") }

// probeImage is one layer: /bin/probe (the entrypoint), /bin/tool (the same
// binary under another name), /tmp and /ctl.
func probeImage(t testing.TB, probe []byte) v1.Image {
	return containerdtest.Image(t, map[string][]byte{"bin/probe": probe, "bin/tool": probe, "tmp/": nil, "ctl/": nil},
		"/bin/probe", "serve", "/ctl")
}

// importImage loads img into containerd and unpacks it; it returns the
// image's manifest digest as containerd knows it.
func importImage(t testing.TB, ctx context.Context, c *client.Client, img v1.Image) client.Image {
	return containerdtest.Import(t, ctx, c, img, "bulwark.test/probe:e2e")
}

// ctr is one running probe container.
type ctr struct {
	id   string
	sock string
	task client.Task
}

// create makes a container with a created (not started) task; opts add to
// its spec.
func create(t testing.TB, ctx context.Context, c *client.Client, img client.Image, id string, opts ...oci.SpecOpts) *ctr {
	t.Helper()
	ctl, err := os.MkdirTemp("", "bwctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ctl) })
	task := containerdtest.Create(t, ctx, c, img, id, append([]oci.SpecOpts{
		oci.WithMounts([]specs.Mount{{Destination: "/ctl", Type: "bind", Source: ctl, Options: []string{"rbind", "rw"}}})}, opts...)...)
	return &ctr{id: id, sock: filepath.Join(ctl, "ctl.sock"), task: task}
}

func (k *ctr) start(t testing.TB, ctx context.Context) {
	t.Helper()
	if err := k.task.Start(ctx); err != nil {
		t.Fatalf("starting %s: %v", k.id, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(k.sock); err == nil {
			return // the entrypoint runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the entrypoint of %s did not come up", k.id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends one command to the probe in the container.
func (k *ctr) do(t *testing.T, cmd string) string { return containerdtest.Ask(t, k.sock, cmd) }

// collector gathers the agent's events.
type collector struct {
	mu     sync.Mutex
	events []Event
	n      atomic.Int64
}

func (c *collector) report(e Event) {
	if c.n.Add(1) <= 100 {
		c.mu.Lock()
		c.events = append(c.events, e)
		c.mu.Unlock()
	}
}

// find returns the first event of container with verdict, waiting up to
// 5 s: the agent answers the exec first and reports after, so the exec's
// caller can see EPERM before the event exists.
func (c *collector) find(container, verdict string) *Event {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		for i := range c.events {
			if e := c.events[i]; e.Container == container && string(e.Verdict) == verdict {
				c.mu.Unlock()
				return &e
			}
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStats polls the agent's counters until cond holds, up to 5 s (they
// are counted after the exec is answered).
func waitStats(a *Agent, cond func(Stats) bool) Stats {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := a.Stats()
		if cond(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startAgent runs an agent, its Config changed by opts, until the returned
// stop is called.
func startAgent(t testing.TB, addr string, mode Mode, col *collector, opts ...func(*Config)) (*Agent, func()) {
	t.Helper()
	cfg := Config{Mode: mode, Address: addr, Namespaces: []string{testNS}, Report: col.report, CanaryDir: t.TempDir(),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	cfg.GateCgroup = testNS // runc's cgroup of the namespace: other tests' containers on the node are not gated by this agent
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready in 30s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitWatched(t *testing.T, a *Agent, id string) ContainerInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if info, ok := a.Container(id); ok {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never watched %s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
