// Package control measures the runtime control loop: the
// running-vulnerability query over 10,000 pods on 500 nodes, and the time
// from an advisory import to 100 Deployments rolled back (a real
// kube-apiserver). The drift-to-replacement figure comes from the
// end-to-end test on a real kubelet (run.sh). See docs/runtime.md.
package control

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/fleet"
)

// facts: digest i is affected by CVE-BENCH when i%10 == 0 (20 of 200
// digests), and every digest by 5 advisories of its own.
type facts struct{}

func (facts) Image(_ context.Context, d string) (fleet.ImageFacts, error) {
	var i int
	fmt.Sscanf(d, "sha256:%d", &i)
	f := fleet.ImageFacts{Repository: "reg/app", Application: "app", Certification: "certified"}
	for k := range 5 {
		f.Advisories = append(f.Advisories, fmt.Sprintf("CVE-%d-%d", i, k))
	}
	if i%10 == 0 {
		f.Advisories = append(f.Advisories, "CVE-BENCH")
	}
	return f, nil
}

func (facts) Host(context.Context, *agentproto.Distro, []agentproto.Package) ([]string, error) {
	return []string{"CVE-HOST"}, nil
}

// fleetOf is 500 nodes of 20 pods each, over 200 digests, matched.
func fleetOf(b *testing.B) *fleet.Index {
	x := fleet.New(facts{}, nil)
	now := time.Now()
	for n := range 500 {
		hb := agentproto.Heartbeat{Node: fmt.Sprintf("node-%03d", n), Mode: "prevent", State: agentproto.StateEnforcingFanotify,
			Packages: []agentproto.Package{{Type: "deb", Name: "openssl", Version: "3.0.1"}}, Distro: &agentproto.Distro{ID: "debian", VersionID: "12"}}
		for p := range 20 {
			id := n*20 + p
			hb.Containers = append(hb.Containers, agentproto.Container{ID: fmt.Sprintf("c%05d", id), Namespace: "k8s.io",
				Image: fmt.Sprintf("sha256:%d", id%200), Labels: map[string]string{agentproto.LabelPodName: fmt.Sprintf("pod-%05d", id),
					agentproto.LabelPodNamespace: fmt.Sprintf("ns-%d", id%50)}})
		}
		x.Observe(hb, now)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go x.Run(ctx)
	for x.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	return x
}

// BenchmarkRunningQuery: which pods on which nodes run a digest
// CVE-BENCH affects (1,000 of 10,000 pods, on every node), and which hosts.
func BenchmarkRunningQuery(b *testing.B) {
	x := fleetOf(b)
	b.ResetTimer()
	var e fleet.Exposure
	for b.Loop() {
		e = x.Running("CVE-BENCH")
	}
	if len(e.Workloads) != 1000 || len(e.Nodes) != 500 || len(e.Digests) != 20 {
		b.Fatalf("exposure: %d workloads, %d nodes, %d digests", len(e.Workloads), len(e.Nodes), len(e.Digests))
	}
}

// BenchmarkRunningQueryHost: an advisory of the hosts' own packages (every
// node).
func BenchmarkRunningQueryHost(b *testing.B) {
	x := fleetOf(b)
	b.ResetTimer()
	var e fleet.Exposure
	for b.Loop() {
		e = x.Running("CVE-HOST")
	}
	if len(e.Hosts) != 500 {
		b.Fatalf("%d hosts", len(e.Hosts))
	}
}
