package fleet

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// hb is a heartbeat of node running cs.
func hb(node string, cs ...agentproto.Container) agentproto.Heartbeat {
	return agentproto.Heartbeat{Node: node, Mode: "prevent", State: agentproto.StateEnforcingFanotify, Containers: cs}
}

func arrived(x *Index) bool {
	select {
	case <-x.RevokedArrived():
		return true
	default:
		return false
	}
}

// The index names the revoked digests of which it learns a workload it
// did not list before: a heartbeat brings it (the digest known revoked),
// or the first description of a newly running digest finds it revoked.
// Each digest once per learning, however many of its containers come;
// a workload it listed before is not news.
func TestRevokedArrivals(t *testing.T) {
	f := &facts{images: map[string]ImageFacts{
		"sha256:bad":  {Repository: "r/shop", Certification: revoked},
		"sha256:good": {Repository: "r/shop", Certification: "certified"},
	}}
	x := New(f, nil)
	now := time.Now()

	// Not running at revocation time: the first description says revoked.
	x.Observe(hb("n1", pod("c1", "sha256:bad", "shop", "web-1"), pod("c2", "sha256:good", "shop", "web-2")), now)
	if got := x.RevokedArrivals(); len(got) != 0 {
		t.Fatalf("before describing: %v", got)
	}
	settle(t, x)
	if !arrived(x) {
		t.Fatal("no signal for a revoked digest found running")
	}
	if got := x.RevokedArrivals(); !slices.Equal(got, []string{"sha256:bad"}) {
		t.Fatalf("arrivals %v, want sha256:bad", got)
	}
	if got := x.RevokedArrivals(); len(got) != 0 {
		t.Fatalf("arrivals taken twice: %v", got)
	}

	// The same heartbeat again, and described again: nothing new.
	x.Observe(hb("n1", pod("c1", "sha256:bad", "shop", "web-1"), pod("c2", "sha256:good", "shop", "web-2")), now)
	x.Refresh("sha256:bad")
	settle(t, x)
	if got := x.RevokedArrivals(); len(got) != 0 {
		t.Fatalf("a workload listed before arrived again: %v", got)
	}

	// A thousand new containers of the revoked digest on another node: one
	// arrival.
	var many []agentproto.Container
	for i := range 1000 {
		many = append(many, pod(fmt.Sprintf("m%d", i), "sha256:bad", "other", fmt.Sprintf("p-%d", i)))
	}
	x.Observe(hb("n2", many...), now)
	if got := x.RevokedArrivals(); !slices.Equal(got, []string{"sha256:bad"}) {
		t.Fatalf("arrivals %v, want sha256:bad once", got)
	}

	// A container that leaves and comes back (restarted, a late
	// heartbeat) is news again.
	x.Observe(hb("n1", pod("c2", "sha256:good", "shop", "web-2")), now)
	if got := x.RevokedArrivals(); len(got) != 0 {
		t.Fatalf("a workload leaving arrived: %v", got)
	}
	x.Observe(hb("n1", pod("c1", "sha256:bad", "shop", "web-1"), pod("c2", "sha256:good", "shop", "web-2")), now)
	if got := x.RevokedArrivals(); !slices.Equal(got, []string{"sha256:bad"}) {
		t.Fatalf("arrivals %v after the container came back", got)
	}

	// A revocation of a running digest marks it: the revocation answers
	// what runs, and is no arrival. A container of it that comes after is.
	x.SetCertification("sha256:good", revoked)
	f.mu.Lock()
	f.images["sha256:good"] = ImageFacts{Repository: "r/shop", Certification: revoked}
	f.mu.Unlock()
	x.Refresh("sha256:good")
	settle(t, x)
	if got := x.RevokedArrivals(); len(got) != 0 {
		t.Fatalf("a revocation of what runs arrived: %v", got)
	}
	x.Observe(hb("n3", pod("c9", "sha256:good", "shop", "web-9")), now)
	if got := x.RevokedArrivals(); !slices.Equal(got, []string{"sha256:good"}) {
		t.Fatalf("arrivals %v, want sha256:good", got)
	}
}
