package fleet

import (
	"slices"
	"testing"
	"time"
)

// TestForgetSilent: a node whose heartbeats stopped stayed "running"
// everything it last listed until the server restarted: in the workloads,
// the exposure of an advisory, and the allowlist route's scope (a node
// that claimed a digest once could read it for ever). Forget drops it
// whole; the node that still reports stays; a new heartbeat brings the
// forgotten one back.
func TestForgetSilent(t *testing.T) {
	f := &facts{images: map[string]ImageFacts{
		"sha256:a": {Repository: "r/a", Advisories: []string{"CVE-1"}},
		"sha256:b": {Repository: "r/b"},
	}}
	x := New(f, nil)
	t0 := time.Now()
	x.Observe(hb("silent", pod("c1", "sha256:a", "shop", "web-1")), t0)
	x.Drifted("silent", "c1", t0)
	x.Observe(hb("alive", pod("c2", "sha256:b", "shop", "web-2")), t0.Add(5*time.Minute))
	settle(t, x)
	if got := x.Running("CVE-1"); len(got.Workloads) != 1 {
		t.Fatalf("before: %+v", got)
	}
	if gone := x.Forget(t0.Add(time.Minute)); !slices.Equal(gone, []string{"silent"}) {
		t.Fatalf("forgot %v, want [silent]", gone)
	}
	if ws := x.Workloads(Filter{Node: "silent"}); len(ws) != 0 {
		t.Errorf("workloads of the forgotten node: %+v", ws)
	}
	if got := x.Running("CVE-1"); len(got.Workloads) != 0 || len(got.Digests) != 0 {
		t.Errorf("exposure after forgetting: %+v", got)
	}
	if _, ok := x.Node("silent"); ok {
		t.Error("the forgotten node is still listed")
	}
	if ws := x.Workloads(Filter{Node: "alive"}); len(ws) != 1 {
		t.Errorf("the node that reports: %+v", ws)
	}
	x.Observe(hb("silent", pod("c1", "sha256:a", "shop", "web-1")), t0.Add(6*time.Minute))
	settle(t, x)
	if got := x.Running("CVE-1"); len(got.Workloads) != 1 || !got.Workloads[0].Drifted.IsZero() {
		t.Errorf("back after a heartbeat: %+v", got)
	}
}
