package agent

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
	"github.com/bulwark-sec/bulwark/internal/netflow"
)

// TestConnectsFeedFlows: with the exec sensor running, a connection
// opened and closed at once (which a socket scan would miss) by a watched
// container's process (this test's own cgroup, standing in for one) is
// counted in the flows the agent reports to governance.
func TestConnectsFeedFlows(t *testing.T) {
	needRoot(t)
	cg, err := cgroupID(os.Getpid())
	if err != nil {
		kerneltest.Skip(t, "no cgroup v2 id here: %v", err)
	}
	a, err := New(Config{Mode: ModeOff, ExecEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	a.byCgroup[cg] = &container{id: "self", namespace: "test", image: "sha256:self", cgroup: cg}
	tr := &netflow.Tracker{}
	a.flowTracker.Store(tr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	m := a.startSensor()
	if m == nil {
		t.Fatal("the exec sensor did not start")
	}
	go func() { done <- a.serveProcessEvents(ctx, m) }()
	defer func() { cancel(); <-done }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	want := ln.Addr().String()
	var got int64
	for deadline := time.Now().Add(10 * time.Second); got < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, f := range tr.Batch("node-1", time.Now()).Flows {
			if f.Container == "self" && f.Destination == want && f.Image == "sha256:self" {
				got += f.Count
			}
		}
	}
	if got != 2 {
		t.Fatalf("flows to %s counted %d, want the 2 short-lived connections", want, got)
	}
	if s := a.Stats(); s.ProcessConnects < 2 {
		t.Fatalf("connect events %d, want 2", s.ProcessConnects)
	}
}
