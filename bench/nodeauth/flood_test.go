package nodeauth

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/k8stest"
	"github.com/bulwark-sec/bulwark/internal/kube"
)

// forged is a JWT that passes the reviewer's local checks (audience,
// expiry) and that only the cluster refuses.
func forged(i int) string {
	claims := fmt.Sprintf(`{"aud":["bulwark"],"exp":%d,"jti":"%d"}`, time.Now().Add(time.Hour).Unix(), i)
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
}

// BenchmarkReviewUnderFlood measures an agent's first review (a cache
// miss) against a real kube-apiserver while 200 connections send distinct
// forged JWTs, from one address or from 200: agent-ms is the agent's
// wait, forged/s the forged reviews answered (each one a TokenReview).
//
//	go test ./bench/nodeauth -run '^$' -bench ReviewUnderFlood -benchtime 5x
func BenchmarkReviewUnderFlood(b *testing.B) {
	cl := k8stest.Start(b)
	kc, err := kube.Load(cl.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cl.ServiceAccountPod(b, "bulwark-system", "bulwark-agent", "agent-1", "node-1")
	for _, tc := range []struct {
		name    string
		sources int // 0: no flood
	}{{"idle", 0}, {"one-address", 1}, {"200-addresses", 200}} {
		b.Run(tc.name, func(b *testing.B) {
			r := reviewer(b, kc)
			ctx, cancel := context.WithCancel(b.Context())
			var wg sync.WaitGroup
			var forgedN atomic.Int64
			if tc.sources > 0 {
				for g := range 200 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						src := fmt.Sprint("10.1.", g%tc.sources/250, ".", g%tc.sources%250)
						for i := 0; ctx.Err() == nil; i++ {
							r.Authenticate(ctx, forged(g*1_000_000+i), src)
							forgedN.Add(1)
						}
					}()
				}
				time.Sleep(500 * time.Millisecond)
			}
			start, n0 := time.Now(), forgedN.Load()
			var waited time.Duration
			b.ResetTimer()
			for range b.N {
				tok, err := cl.PodToken("bulwark-system", "bulwark-agent", "agent-1", "bulwark", time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if _, err := r.Authenticate(b.Context(), tok, "10.2.0.1"); err != nil {
					b.Fatal(err)
				}
				waited += time.Since(t0)
			}
			b.StopTimer()
			b.ReportMetric(float64(waited.Microseconds())/1000/float64(b.N), "agent-ms")
			b.ReportMetric(float64(forgedN.Load()-n0)/time.Since(start).Seconds(), "forged/s")
			cancel()
			wg.Wait()
		})
	}
}
