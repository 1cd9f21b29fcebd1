package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// TestAgentRSS (acceptance 3c) runs the real bulwark-agent binary, as its
// own process in prevent, against Debian's containerd with
// BULWARK_BENCH_AGENT_CONTAINERS (100) running containers of a busybox
// image, waits until its status file lists them all, and reports its
// resident memory (VmRSS, VmHWM). Opt in with BULWARK_BENCH_AGENT_RSS=1:
// starting 100 containers takes minutes on a loaded machine.
func TestAgentRSS(t *testing.T) {
	if os.Getenv("BULWARK_BENCH_AGENT_RSS") != "1" {
		t.Skip("set BULWARK_BENCH_AGENT_RSS=1 (root, containerd, runc, busybox-static)")
	}
	n := 100
	if v, err := strconv.Atoi(os.Getenv("BULWARK_BENCH_AGENT_CONTAINERS")); err == nil && v > 0 {
		n = v
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil || bytes.Contains(bb, []byte("/lib64/ld-linux")) {
		t.Fatalf("a static /bin/busybox is needed (busybox-static): %v", err)
	}
	c, addr := containerdtest.Start(t)
	ns := "bench-" + strconv.Itoa(os.Getpid()) // runc's state is per namespace, shared by every containerd
	ctx := namespaces.WithNamespace(context.Background(), ns)
	img := containerdtest.Image(t, map[string][]byte{"bin/busybox": bb}, "/bin/busybox", "sleep", "3600")
	ci := containerdtest.Import(t, ctx, c, img, "bulwark.test/busybox:bench")

	start := time.Now()
	for i := range n {
		id := "rss-" + strconv.Itoa(i)
		containerdtest.Run(t, ctx, c, ci, id)
	}
	t.Logf("%d containers started in %s", n, time.Since(start).Round(time.Second))

	dir := t.TempDir()
	bin := filepath.Join(dir, "bulwark-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/bulwark-agent").CombinedOutput(); err != nil {
		t.Fatalf("building bulwark-agent: %v\n%s", err, out)
	}
	status := filepath.Join(dir, "status.json")
	agent := exec.Command(bin, "--mode", "prevent", "--mechanism", "fanotify", "--containerd-address", addr, "--namespaces", ns,
		"--status-file", status, "--canary-dir", dir, "--host-root", "", "--log-level", "warn")
	var logs bytes.Buffer
	agent.Stdout, agent.Stderr = &logs, &logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = agent.Process.Signal(os.Interrupt); _ = agent.Wait() }()
	adopt := time.Now()
	for {
		var st struct {
			State      string
			Containers []json.RawMessage
		}
		if b, err := os.ReadFile(status); err == nil && json.Unmarshal(b, &st) == nil && len(st.Containers) >= n {
			t.Logf("state %q, %d containers watched after %s", st.State, len(st.Containers), time.Since(adopt).Round(100*time.Millisecond))
			break
		}
		if time.Since(adopt) > 5*time.Minute {
			t.Fatalf("the agent did not adopt %d containers in 5 minutes; its log:\n%s", n, logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // settle
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(agent.Process.Pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	var rss, hwm string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("bulwark-agent with %d containers: VmRSS %s, VmHWM %s (load %s)", n, rss, hwm, strings.Join(strings.Fields(string(load))[:3], " "))
}
