package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
	"github.com/bulwark-sec/bulwark/internal/spool"
)

const testImage = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// operatorToken makes a token of role operator through the admin API.
func operatorToken(t *testing.T, srv *servertest.Server) string {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/tokens", strings.NewReader(`{"name":"agent-node-1","role":"operator"}`))
	req.Header.Set("Authorization", "Bearer "+srv.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("creating an operator token: %s %v", resp.Status, err)
	}
	return tok.Token
}

// storedEvents lists every runtime event of digest through the API.
func storedEvents(t *testing.T, srv *servertest.Server, digest string) []struct{ Seq int64 } {
	t.Helper()
	var all []struct{ Seq int64 }
	cur := ""
	for {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/runtime/events?limit=1000&digest="+digest+cur, nil)
		req.Header.Set("Authorization", "Bearer "+srv.Viewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Events []struct{ Seq int64 }
			Next   string
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("listing events: %s %v", resp.Status, err)
		}
		all = append(all, page.Events...)
		if page.Next == "" {
			return all
		}
		cur = "&cursor=" + page.Next
	}
}

type runningSender struct {
	s      *Sender
	sp     *spool.Spool
	cancel func()
	done   chan error
}

func startSender(t *testing.T, url, token, dir string) *runningSender {
	t.Helper()
	sp, err := spool.Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender(SenderConfig{URL: url, Token: token, Node: "node-1", Spool: sp, HeartbeatEvery: 100 * time.Millisecond,
		Heartbeat: func() agentproto.Heartbeat {
			return agentproto.Heartbeat{Mode: "prevent", State: agentproto.StateEnforcingFanotify,
				Containers: []agentproto.Container{{ID: "c1", Namespace: "default", Image: testImage}}}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningSender{s: s, sp: sp, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	return r
}

// stop is the agent going away: the sender stops, the spool is closed.
func (r *runningSender) stop(t *testing.T) {
	r.cancel()
	if err := <-r.done; err != nil {
		t.Error(err)
	}
	r.sp.Close()
}

func report(r *runningSender, from, n int) {
	for i := from; i < from+n; i++ {
		r.s.Report(Event{Time: time.Now().UTC(), Verdict: VerdictRefused, Reason: ReasonNotInImage, PID: 1000 + i,
			Path: fmt.Sprintf("/tmp/drift-%d", i), Digest: "sha256:22", Container: "c1", Namespace: "default", Image: testImage})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEventsSurviveOutage: events reach an in-process server; while the
// server is down they wait in the spool, across an agent restart too;
// when the server is back every event is stored once, in seq order,
// queryable by image digest. The heartbeat lists the node.
func TestEventsSurviveOutage(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	token := operatorToken(t, srv)
	dir := t.TempDir()

	r := startSender(t, srv.URL, token, dir)
	report(r, 1, 600) // more than one batch
	waitFor(t, "600 events stored", func() bool { return len(storedEvents(t, srv, testImage)) == 600 })

	srv.Stop()
	report(r, 601, 300)
	waitFor(t, "a failed send", func() bool { return r.s.Stats().Failed > 0 })
	if p := r.sp.Stats().Pending; p != 300 {
		t.Fatalf("server down: %d events spooled, want 300", p)
	}
	r.stop(t) // the agent restarts during the outage
	r = startSender(t, srv.URL, token, dir)
	report(r, 901, 100)
	if p := r.sp.Stats().Pending; p != 400 {
		t.Fatalf("after the agent's restart: %d events spooled, want 400", p)
	}

	srv.Restart(t)
	waitFor(t, "1000 events stored", func() bool { return r.sp.Stats().Pending == 0 })
	got := storedEvents(t, srv, testImage)
	if len(got) != 1000 {
		t.Fatalf("%d events stored, want 1000", len(got))
	}
	for i, e := range got { // newest first
		if want := int64(1000 - i); e.Seq != want {
			t.Fatalf("event %d has seq %d, want %d (lost or doubled)", i, e.Seq, want)
		}
	}
	r.stop(t)

	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if !strings.Contains(buf.String(), `"enforcing (fanotify)"`) || !strings.Contains(buf.String(), testImage) {
		t.Fatalf("nodes: %s", buf.String())
	}
}
