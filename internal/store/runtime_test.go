package store

import (
	"testing"
	"time"
)

// TestRuntimeEventsIdempotent: a batch stored twice is stored once (the
// agent resends what it has no acknowledgement for), and the events are
// listed by image, node and container, newest first, paged.
func TestRuntimeEventsIdempotent(t *testing.T) {
	ctx := t.Context()
	st, err := Open(ctx, t.TempDir()+"/db.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var evs []RuntimeEvent
	for i := int64(1); i <= 5; i++ {
		evs = append(evs, RuntimeEvent{Node: "n1", Spool: "s1", Seq: i, Time: at, Verdict: "refused", Reason: "not-in-image",
			Path: "/tmp/x", Container: "c1", Namespace: "default", Image: "sha256:aa"})
	}
	added, err := st.AddRuntimeEvents(ctx, evs)
	if err != nil || len(added) != 5 {
		t.Fatalf("first send: %d added, %v", len(added), err)
	}
	// Resent with two new ones; another spool's seq 1 is another event.
	more := append(evs[3:], RuntimeEvent{Node: "n1", Spool: "s1", Seq: 6, Time: at, Verdict: "reported", Container: "c2", Image: "sha256:bb"},
		RuntimeEvent{Node: "n1", Spool: "s2", Seq: 1, Time: at, Verdict: "reported", Container: "c2", Image: "sha256:bb"})
	added, err = st.AddRuntimeEvents(ctx, more)
	if err != nil || len(added) != 2 || added[0].Seq != 6 || added[1].Spool != "s2" {
		t.Fatalf("resend: added %+v, %v", added, err)
	}
	all, err := st.RuntimeEventsPage(ctx, RuntimeFilter{}, 0, 100)
	if err != nil || len(all) != 7 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	page, err := st.RuntimeEventsPage(ctx, RuntimeFilter{Image: "sha256:aa"}, 0, 3)
	if err != nil || len(page) != 3 || page[0].Seq != 5 || !page[0].Time.Equal(at) {
		t.Fatalf("by image, first page: %+v, %v", page, err)
	}
	page, err = st.RuntimeEventsPage(ctx, RuntimeFilter{Image: "sha256:aa"}, page[2].ID, 3)
	if err != nil || len(page) != 2 || page[1].Seq != 1 {
		t.Fatalf("by image, second page: %+v, %v", page, err)
	}
	page, err = st.RuntimeEventsPage(ctx, RuntimeFilter{Node: "n1", Container: "c2"}, 0, 10)
	if err != nil || len(page) != 2 {
		t.Fatalf("by node and container: %+v, %v", page, err)
	}
}

// TestPutNode: a heartbeat creates the node, the next one returns what it
// replaces.
func TestPutNode(t *testing.T) {
	ctx := t.Context()
	st, err := Open(ctx, t.TempDir()+"/db.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prev, err := st.PutNode(ctx, Node{Name: "n1", Mode: "prevent", State: "enforcing (fanotify)", Containers: "[]"})
	if err != nil || prev != nil {
		t.Fatalf("first heartbeat: %+v, %v", prev, err)
	}
	prev, err = st.PutNode(ctx, Node{Name: "n1", Mode: "prevent", State: "broken", Reason: "listener lost", Containers: `[{"id":"c1"}]`, SpoolEvents: 3})
	if err != nil || prev == nil || prev.State != "enforcing (fanotify)" {
		t.Fatalf("second heartbeat: %+v, %v", prev, err)
	}
	nodes, err := st.NodesPage(ctx, "", 10)
	if err != nil || len(nodes) != 1 || nodes[0].State != "broken" || nodes[0].SpoolEvents != 3 || nodes[0].Containers != `[{"id":"c1"}]` {
		t.Fatalf("nodes: %+v, %v", nodes, err)
	}
}
