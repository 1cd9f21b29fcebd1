package identitye2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

const testNS = "bulwark-idtest"

// probeImage is one layer: /bin/svidprobe (the entrypoint), the mount
// points and, to make another digest of the same program, extra.
func probeImage(t *testing.T, probe []byte, extra string) v1.Image {
	return containerdtest.Image(t, map[string][]byte{"bin/svidprobe": probe, "etc-version": []byte(extra),
		"tmp/": nil, "ctl/": nil, "spiffe/": nil, "shared/": nil}, "/bin/svidprobe")
}

// workload is one running probe container.
type workload struct {
	id, ctl string
}

// run starts a probe container with the agent's socket directory at
// /spiffe and shared at /shared (and the runtime labels given), and waits
// for its command socket.
func run(t *testing.T, ctx context.Context, c *client.Client, img client.Image, id, spiffeDir, shared string, labels ...map[string]string) *workload {
	t.Helper()
	ctl, err := os.MkdirTemp("", "bwid")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(ctl, 0o777)
	t.Cleanup(func() { os.RemoveAll(ctl) })
	mounts := []specs.Mount{
		{Destination: "/ctl", Type: "bind", Source: ctl, Options: []string{"rbind", "rw"}},
		{Destination: "/spiffe", Type: "bind", Source: spiffeDir, Options: []string{"rbind", "rw"}},
		{Destination: "/shared", Type: "bind", Source: shared, Options: []string{"rbind", "rw"}},
	}
	opts := []oci.SpecOpts{oci.WithMounts(mounts)}
	for _, l := range labels {
		opts = append(opts, containerdtest.WithLabels(l))
	}
	containerdtest.Run(t, ctx, c, img, id, opts...)
	w := &workload{id: id, ctl: ctl}
	waitFor(t, 15*time.Second, id+"'s command socket", func() bool {
		_, err := os.Stat(filepath.Join(ctl, "ctl.sock"))
		return err == nil
	})
	return w
}

// do sends one command to the probe.
func (w *workload) do(t *testing.T, cmd string) string {
	return containerdtest.Ask(t, filepath.Join(w.ctl, "ctl.sock"), cmd)
}

// event is one line of the probe's /ctl/events.
type event struct {
	at   time.Time
	kind string
	args []string
}

func (w *workload) events(t *testing.T) []event {
	t.Helper()
	f, err := os.Open(filepath.Join(w.ctl, "events"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		ns, _ := strconv.ParseInt(fs[0], 10, 64)
		out = append(out, event{at: time.Unix(0, ns), kind: fs[1], args: fs[2:]})
	}
	return out
}

// waitEvent waits for an event of kind after since and returns it.
func (w *workload) waitEvent(t *testing.T, kind string, since time.Time, within time.Duration) event {
	t.Helper()
	var got event
	waitFor(t, within, w.id+" event "+kind, func() bool {
		for _, e := range w.events(t) {
			if e.kind == kind && !e.at.Before(since) {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
