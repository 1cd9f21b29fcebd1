// Package nodeauth measures what authenticating an agent by its pod's
// projected service account token costs the server, on a real
// kube-apiserver (k8stest): one review (a TokenReview and a read of the
// pod, what an agent's first request after the cache's end pays), a
// request answered from the cache, and for comparison a bwk_ API token
// (a SQLite lookup and its last-used write).
//
//	go test ./bench/nodeauth -run '^$' -bench . -benchtime 200x
package nodeauth

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
	"github.com/bulwark-sec/bulwark/internal/nodeauth"
	"github.com/bulwark-sec/bulwark/internal/store"
)

func setup(b *testing.B) (*kube.Client, string) {
	b.Helper()
	cl := k8stest.Start(b)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cl.ServiceAccountPod(b, "bulwark-system", "bulwark-agent", "agent-1", "node-1")
	tok, err := cl.PodToken("bulwark-system", "bulwark-agent", "agent-1", "bulwark", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return kc, tok
}

func reviewer(b *testing.B, kc *kube.Client) *nodeauth.Reviewer {
	r, err := nodeauth.New(nodeauth.Config{Client: kc, ServiceAccount: "bulwark-system/bulwark-agent"})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// report adds the median and p99 of ds.
func report(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "median-ns")
	b.ReportMetric(float64(ds[len(ds)*99/100].Nanoseconds()), "p99-ns")
}

// One review: TokenReview and the pod's read, an empty cache each time.
func BenchmarkReview(b *testing.B) {
	kc, tok := setup(b)
	ctx := b.Context()
	ds := make([]time.Duration, 0, b.N)
	for b.Loop() {
		r := reviewer(b, kc)
		start := time.Now()
		if _, err := r.Authenticate(ctx, tok, "10.2.0.1"); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	report(b, ds)
}

// A request within the cache's lifetime: the token's SHA-256 and a map.
func BenchmarkCached(b *testing.B) {
	kc, tok := setup(b)
	ctx := b.Context()
	r := reviewer(b, kc)
	if _, err := r.Authenticate(ctx, tok, "10.2.0.1"); err != nil {
		b.Fatal(err)
	}
	ds := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if _, err := r.Authenticate(ctx, tok, "10.2.0.1"); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	report(b, ds)
}

// For comparison: a bwk_ API token, as every request with one pays.
func BenchmarkAPIToken(b *testing.B) {
	st, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "bulwark.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	_, tok, err := st.CreateToken(b.Context(), "node:node-1", store.RoleOperator)
	if err != nil {
		b.Fatal(err)
	}
	ds := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if _, _, err := st.Authenticate(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	report(b, ds)
}
