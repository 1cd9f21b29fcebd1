package fleet

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// facts is a Describer over fixed answers: the advisories of each digest
// and of each (package name@version) on a host.
type facts struct {
	mu     sync.Mutex
	images map[string]ImageFacts
	host   map[string][]string
	calls  int
}

func (f *facts) Image(_ context.Context, d string) (ImageFacts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	im, ok := f.images[d]
	if !ok {
		return ImageFacts{}, fmt.Errorf("no inventory for %s", d)
	}
	return im, nil
}

func (f *facts) Host(_ context.Context, _ *agentproto.Distro, pkgs []agentproto.Package) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range pkgs {
		out = append(out, f.host[p.Name+"@"+p.Version]...)
	}
	return out, nil
}

func pod(id, digest, ns, name string) agentproto.Container {
	return agentproto.Container{ID: id, Namespace: "k8s.io", Image: digest, Labels: map[string]string{
		agentproto.LabelPodName: name, agentproto.LabelPodNamespace: ns, agentproto.LabelPodUID: "uid-" + name}}
}

// settle runs the index's matching until nothing is pending.
func settle(t testing.TB, x *Index) {
	t.Helper()
	for range 100 {
		x.describeQueued(context.Background())
		if x.Pending() == 0 {
			return
		}
	}
	t.Fatalf("%d still pending", x.Pending())
}

func TestRunningAnswersByAdvisory(t *testing.T) {
	f := &facts{images: map[string]ImageFacts{
		"sha256:a": {Repository: "r/shop", Application: "shop", Certification: "certified", Advisories: []string{"CVE-1", "GHSA-x", "CVE-1"}},
		"sha256:b": {Repository: "r/old", Application: "legacy", EndOfLife: true, Advisories: []string{"CVE-2"}},
	}, host: map[string][]string{"openssl@3.0.1": {"CVE-1"}}}
	x := New(f, nil)
	now := time.Now()
	x.Observe(agentproto.Heartbeat{Node: "n1", Mode: "prevent", State: agentproto.StateEnforcingFanotify, Kernel: "6.1",
		Containers: []agentproto.Container{pod("c1", "sha256:a", "shop", "web-1"), pod("c2", "sha256:b", "old", "legacy-1")}}, now)
	x.Observe(agentproto.Heartbeat{Node: "n2", Mode: "detect", State: agentproto.StateDetectingOnly,
		Packages:   []agentproto.Package{{Type: "deb", Name: "openssl", Version: "3.0.1"}},
		Containers: []agentproto.Container{pod("c3", "sha256:a", "shop", "web-2")}}, now)
	if e := x.Running("CVE-1"); e.Pending != 3 || len(e.Workloads) != 0 {
		t.Fatalf("before matching: %+v", e)
	}
	settle(t, x)
	e := x.Running("CVE-1")
	if len(e.Workloads) != 2 || e.Workloads[0].Pod != "web-1" || e.Workloads[0].Node != "n1" || e.Workloads[1].Pod != "web-2" ||
		e.Workloads[0].Application != "shop" || e.Workloads[0].Certification != "certified" {
		t.Fatalf("workloads: %+v", e.Workloads)
	}
	if fmt.Sprint(e.Nodes) != "[n1 n2]" || len(e.Hosts) != 1 || e.Hosts[0].Name != "n2" || e.Hosts[0].Advisories != 1 {
		t.Fatalf("nodes %v hosts %+v", e.Nodes, e.Hosts)
	}
	if e := x.Running("GHSA-x"); len(e.Workloads) != 2 || len(e.Hosts) != 0 {
		t.Fatalf("alias: %+v", e)
	}
	if eol := x.Workloads(Filter{EndOfLife: true}); len(eol) != 1 || eol[0].Pod != "legacy-1" {
		t.Fatalf("end-of-life violations: %+v", eol)
	}

	// The pod on n2 goes away; n1's heartbeat again costs no describing.
	calls := f.calls
	x.Observe(agentproto.Heartbeat{Node: "n2", Mode: "detect", State: agentproto.StateDetectingOnly,
		Packages: []agentproto.Package{{Type: "deb", Name: "openssl", Version: "3.0.1"}}}, now)
	x.Observe(agentproto.Heartbeat{Node: "n1", Mode: "prevent", State: agentproto.StateEnforcingFanotify,
		Containers: []agentproto.Container{pod("c1", "sha256:a", "shop", "web-1"), pod("c2", "sha256:b", "old", "legacy-1")}}, now)
	settle(t, x)
	if f.calls != calls {
		t.Fatalf("unchanged heartbeats described images again: %d calls", f.calls-calls)
	}
	if e := x.Running("CVE-1"); len(e.Workloads) != 1 || e.Workloads[0].Pod != "web-1" || fmt.Sprint(e.Nodes) != "[n1]" {
		t.Fatalf("after the pod left n2: %+v", e)
	}
	// Nothing runs b any more: CVE-2 names nothing.
	x.Observe(agentproto.Heartbeat{Node: "n1", Mode: "prevent", State: agentproto.StateEnforcingFanotify}, now)
	if e := x.Running("CVE-2"); len(e.Workloads) != 0 || len(e.Digests) != 0 {
		t.Fatalf("after the digest stopped: %+v", e)
	}
	// A revocation shows at once; drift on the workload.
	x.Observe(agentproto.Heartbeat{Node: "n1", Mode: "prevent", State: agentproto.StateEnforcingFanotify,
		Containers: []agentproto.Container{pod("c1", "sha256:a", "shop", "web-1")}}, now)
	settle(t, x)
	x.SetCertification("sha256:a", "revoked")
	x.Drifted("n1", "c1", now)
	if w, ok := x.Workload("n1", "c1"); !ok || w.Certification != "revoked" || w.Drifted.IsZero() {
		t.Fatalf("workload: %+v %v", w, ok)
	}
}

func TestRunRetriesFailures(t *testing.T) {
	f := &facts{images: map[string]ImageFacts{}}
	x := New(f, nil)
	x.Observe(agentproto.Heartbeat{Node: "n1", Mode: "off", State: agentproto.StateOff,
		Containers: []agentproto.Container{pod("c1", "sha256:unknown", "a", "p")}}, time.Now())
	if failed := x.describeQueued(context.Background()); !failed || x.Pending() != 1 {
		t.Fatalf("failed %v pending %d", failed, x.Pending())
	}
	f.mu.Lock()
	f.images["sha256:unknown"] = ImageFacts{Advisories: []string{"CVE-9"}}
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- x.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(x.Running("CVE-9").Workloads) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not retry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Simulated is a fleet of nodes×perNode pods over digests distinct images,
// every tenth of which an advisory "CVE-HOT" affects; it is settled.
func Simulated(tb testing.TB, nodes, perNode, digests int) *Index {
	f := &facts{images: map[string]ImageFacts{}, host: map[string][]string{"openssl@1": {"CVE-HOT"}}}
	for i := range digests {
		advs := []string{fmt.Sprintf("CVE-%d", i)}
		if i%10 == 0 {
			advs = append(advs, "CVE-HOT")
		}
		f.images[fmt.Sprintf("sha256:%064d", i)] = ImageFacts{Application: fmt.Sprintf("app-%d", i%50), Advisories: advs}
	}
	x := New(f, nil)
	k := 0
	for n := range nodes {
		hb := agentproto.Heartbeat{Node: fmt.Sprintf("node-%03d", n), Mode: "prevent", State: agentproto.StateEnforcingFanotify}
		if n%5 == 0 {
			hb.Packages = []agentproto.Package{{Type: "deb", Name: "openssl", Version: "1"}}
		}
		for p := range perNode {
			hb.Containers = append(hb.Containers, pod(fmt.Sprintf("c-%d-%d", n, p), fmt.Sprintf("sha256:%064d", k%digests),
				fmt.Sprintf("ns-%d", k%40), fmt.Sprintf("pod-%d", k)))
			k++
		}
		x.Observe(hb, time.Now())
	}
	settle(tb, x)
	return x
}

func TestSimulatedFleet(t *testing.T) {
	x := Simulated(t, 500, 20, 1000)
	e := x.Running("CVE-HOT")
	if len(e.Workloads) != 1000 || len(e.Digests) != 100 || len(e.Hosts) != 100 || e.Pending != 0 {
		t.Fatalf("workloads %d digests %d hosts %d pending %d", len(e.Workloads), len(e.Digests), len(e.Hosts), e.Pending)
	}
	if e := x.Running("CVE-7"); len(e.Workloads) != 10 {
		t.Fatalf("one digest: %d workloads", len(e.Workloads))
	}
}

// BenchmarkRunning is the running-vulnerability query over 10,000 pods on
// 500 nodes: an advisory that affects 100 digests run by 1,000 pods, and
// 100 hosts.
func BenchmarkRunning(b *testing.B) {
	x := Simulated(b, 500, 20, 1000)
	b.ResetTimer()
	for b.Loop() {
		if e := x.Running("CVE-HOT"); len(e.Workloads) != 1000 {
			b.Fatal(len(e.Workloads))
		}
	}
}
