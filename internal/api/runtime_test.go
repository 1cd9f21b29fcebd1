package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// TestAgentRoutes: a batch sent twice is stored once and notified once
// (grouped per container, content and verdict); a viewer cannot post;
// malformed batches are 400; the heartbeat is listed under nodes.
func TestAgentRoutes(t *testing.T) {
	h, st := newTestAPI(t)
	ctx := t.Context()
	s := st.(*store.Store)
	_, op, _ := s.CreateToken(ctx, "agent", store.RoleOperator)
	_, viewer, _ := s.CreateToken(ctx, "v", store.RoleViewer)
	if _, err := s.PutWebhook(ctx, store.Webhook{Name: "all", URL: "https://example.com/x", Kind: "generic", Events: []string{notify.EventDrift}}); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, token string, body any) (int, []byte) {
		return serveJSON(h, method, path, token, body)
	}
	at := time.Now().UTC()
	batch := agentproto.Batch{Node: "node-1", Spool: "abc"}
	for i := uint64(1); i <= 4; i++ {
		batch.Events = append(batch.Events, agentproto.Event{Seq: i, Time: at, Verdict: agentproto.VerdictRefused,
			Reason: "not-in-image", Path: "/tmp/x", Digest: "sha256:11", Container: "c1", Namespace: "default", Image: "sha256:aa"})
	}
	batch.Events[3].Container = "c2"
	for round, want := range []EventsAccepted{{Acked: 4, Stored: 4}, {Acked: 4, Duplicates: 4}} {
		code, body := call("POST", agentproto.EventsPath, op, batch)
		var got EventsAccepted
		json.Unmarshal(body, &got)
		if code != http.StatusOK || got != want {
			t.Fatalf("send %d: %d %s, want %+v", round, code, body, want)
		}
	}
	jobs, err := s.ListJobs(ctx, notify.JobKind, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("%d notifications queued, want 2 (c1 x3, c2 x1)", len(jobs))
	}
	code, body := call("GET", "/api/v1/runtime/events?digest=sha256:aa&container=c1", viewer, nil)
	var page struct{ Events []store.RuntimeEvent }
	json.Unmarshal(body, &page)
	if code != http.StatusOK || len(page.Events) != 3 || page.Events[0].Seq != 3 {
		t.Fatalf("events by digest and container: %d %s", code, body)
	}
	if code, _ := call("POST", agentproto.EventsPath, viewer, batch); code != http.StatusForbidden {
		t.Fatalf("a viewer posting events: %d, want 403", code)
	}
	bad := []any{
		`{"node":"n","spool":"s","events":[]}`,
		`{"node":"n","spool":"s","events":[{"seq":2,"time":"2025-01-01T00:00:00Z","verdict":"refused","container":"c"},{"seq":1,"time":"2025-01-01T00:00:00Z","verdict":"refused","container":"c"}]}`,
		`{"node":"n","spool":"s","events":[{"seq":1,"time":"2025-01-01T00:00:00Z","verdict":"maybe","container":"c"}]}`,
		`{"node":"n n","spool":"s","events":[{"seq":1,"time":"2025-01-01T00:00:00Z","verdict":"refused","container":"c"}]}`,
		`{"node":"n","spool":"s","extra":1,"events":[{"seq":1,"time":"2025-01-01T00:00:00Z","verdict":"refused","container":"c"}]}`,
		`{"node":"n","spool":"s","events":[{"seq":18446744073709551615,"time":"2025-01-01T00:00:00Z","verdict":"refused","container":"c"}]}`,
	}
	for _, b := range bad {
		if code, body := call("POST", agentproto.EventsPath, op, b); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", b, code, body)
		}
	}
	hb := agentproto.Heartbeat{Node: "node-1", Mode: "prevent", State: agentproto.StateEnforcingFanotify,
		Containers: []agentproto.Container{{ID: "c1", Namespace: "default", Image: "sha256:aa", Labels: map[string]string{"app": "web"}}}}
	if code, body := call("POST", agentproto.HeartbeatPath, op, hb); code != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	hb.State = "enforcing (magic)"
	if code, _ := call("POST", agentproto.HeartbeatPath, op, hb); code != http.StatusBadRequest {
		t.Fatalf("an unknown state: %d, want 400", code)
	}
	code, body = call("GET", "/api/v1/nodes", viewer, nil)
	var nodes struct{ Nodes []NodeView }
	json.Unmarshal(body, &nodes)
	if code != http.StatusOK || len(nodes.Nodes) != 1 || nodes.Nodes[0].State != agentproto.StateEnforcingFanotify ||
		!bytes.Contains(nodes.Nodes[0].Containers, []byte(`"web"`)) {
		t.Fatalf("nodes: %d %s", code, body)
	}
}
