package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/bulwark-sec/bulwark/internal/containerdtest"
)

// A standalone container whose exec drifts is recreated from its image:
// a new task, a fresh snapshot without the drifted file, watched again.
func TestReplaceDriftedStandaloneContainer(t *testing.T) {
	c, addr := containerdtest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	img := importImage(t, ctx, c, probeImage(t, buildProbe(t)))
	k := create(t, ctx, c, img, "solo")
	k.start(t, ctx)
	t.Cleanup(func() { // the recreated task is not the one create's cleanup knows
		cctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 20*time.Second)
		defer cancel()
		if ctr, err := c.LoadContainer(cctx, "solo"); err == nil {
			if task, err := ctr.Task(cctx, nil); err == nil {
				task.Kill(cctx, syscall.SIGKILL)
				if ch, err := task.Wait(cctx); err == nil {
					<-ch
				}
				task.Delete(cctx)
			}
			ctr.Delete(cctx, client.WithSnapshotCleanup)
		}
	})
	var col collector
	a, err := New(Config{Mode: ModePrevent, Address: addr, Namespaces: []string{testNS}, Report: col.report, ReplaceDrifted: true})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	defer func() { stop(); <-done }()
	<-a.Ready()
	waitWatched(t, a, "solo")
	before := k.task.Pid()

	if got := k.do(t, "copy /bin/probe /tmp/drift"); got != "ok" {
		t.Fatalf("copy: %s", got)
	}
	// Refused; the replacement may cut the answer short.
	if got := k.do(t, "run /tmp/drift"); got != "eperm" && got != "" {
		t.Fatalf("drifted exec: %q", got)
	}
	if col.find("solo", string(VerdictRefused)) == nil {
		t.Error("the refused exec was not reported")
	}
	deadline := time.Now().Add(30 * time.Second)
	var pid uint32
	for {
		if ctr, err := c.LoadContainer(ctx, "solo"); err == nil {
			if task, err := ctr.Task(ctx, nil); err == nil {
				if st, err := task.Status(ctx); err == nil && st.Status == client.Running && task.Pid() != before {
					pid = task.Pid()
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the drifted container was not recreated within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info := waitWatched(t, a, "solo"); info.Image != img.Target().Digest.String() {
		t.Errorf("recreated container watched with %+v", info)
	}
	// The probe of the new task answers; the drifted file is gone.
	deadline = time.Now().Add(15 * time.Second)
	for {
		if got := k.tryDo("run /tmp/drift"); strings.Contains(got, "no such file") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after the replacement, run /tmp/drift: %q, want no such file (a fresh snapshot)", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// That exec was refused too (the replacement is from the image, the
	// file is simply not there): no second replacement.
	time.Sleep(500 * time.Millisecond)
	if ctr, err := c.LoadContainer(ctx, "solo"); err == nil {
		if task, err := ctr.Task(ctx, nil); err != nil || task.Pid() != pid {
			t.Errorf("replaced again without drift")
		}
	}
}

// tryDo is do without failing the test when the probe is not there (yet).
func (k *ctr) tryDo(cmd string) string {
	conn, err := net.DialTimeout("unix", k.sock, time.Second)
	if err != nil {
		return "err " + err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(conn, cmd)
	b, _ := io.ReadAll(conn)
	return strings.TrimSpace(string(b))
}
