package admission

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the histogram's upper bounds in seconds: fine below
// 2 ms, where cached decisions fall, coarse up to the verify budget.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10}

// windowSize is how many recent latencies the quantiles are taken over.
const windowSize = 1 << 16

// histogram is a Prometheus histogram plus a window of recent exact
// values for the quantiles a benchmark reports.
type histogram struct {
	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
	max    time.Duration
	window []time.Duration
	next   int
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = make([]uint64, len(latencyBuckets)+1)
		h.window = make([]time.Duration, 0, windowSize)
	}
	i, _ := slices.BinarySearch(latencyBuckets, s)
	h.counts[i]++
	h.sum += s
	h.n++
	h.max = max(h.max, d)
	if len(h.window) < windowSize {
		h.window = append(h.window, d)
	} else {
		h.window[h.next] = d
		h.next = (h.next + 1) % windowSize
	}
}

// Quantiles are exact quantiles over the recent window and the maximum
// since start.
type Quantiles struct {
	Count         uint64
	P50, P99, Max time.Duration
}

func (h *histogram) quantiles() Quantiles {
	h.mu.Lock()
	w := slices.Clone(h.window)
	q := Quantiles{Count: h.n, Max: h.max}
	h.mu.Unlock()
	if len(w) == 0 {
		return q
	}
	slices.Sort(w)
	at := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(w)))) - 1
		return w[max(0, min(i, len(w)-1))]
	}
	q.P50, q.P99 = at(0.50), at(0.99)
	return q
}

func (h *histogram) write(w io.Writer, name, labels string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cum uint64
	for i, le := range latencyBuckets {
		if h.counts != nil {
			cum += h.counts[i]
		}
		fmt.Fprintf(w, "%s_bucket{%sle=\"%g\"} %d\n", name, labels, le, cum)
	}
	fmt.Fprintf(w, "%s_bucket{%sle=\"+Inf\"} %d\n", name, labels, h.n)
	trim := labels
	if trim != "" {
		trim = "{" + trim[:len(trim)-1] + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %g\n%s_count%s %d\n", name, trim, h.sum, name, trim, h.n)
}

// metrics are the webhook's Prometheus metrics, written by hand like the
// server's (internal/api).
type metrics struct {
	validate, mutate histogram
	allowed, denied  atomic.Int64
	warned, errors   atomic.Int64
	cacheHits        atomic.Int64
	cacheMisses      atomic.Int64
	registryCalls    atomic.Int64
	feedErrors       atomic.Int64
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) write(w io.Writer, cached int, lastSync int64) {
	fmt.Fprintf(w, "# HELP bulwark_admission_request_duration_seconds Time to answer an AdmissionReview, measured in the handler.\n# TYPE bulwark_admission_request_duration_seconds histogram\n")
	m.validate.write(w, "bulwark_admission_request_duration_seconds", `webhook="validate",`)
	m.mutate.write(w, "bulwark_admission_request_duration_seconds", `webhook="mutate",`)
	fmt.Fprintf(w, "# HELP bulwark_admission_request_duration_quantile_seconds Exact quantiles over the last %d requests (max since start).\n# TYPE bulwark_admission_request_duration_quantile_seconds gauge\n", windowSize)
	for _, x := range []struct {
		name string
		h    *histogram
	}{{"validate", &m.validate}, {"mutate", &m.mutate}} {
		q := x.h.quantiles()
		fmt.Fprintf(w, "bulwark_admission_request_duration_quantile_seconds{webhook=%q,quantile=\"0.5\"} %g\n", x.name, q.P50.Seconds())
		fmt.Fprintf(w, "bulwark_admission_request_duration_quantile_seconds{webhook=%q,quantile=\"0.99\"} %g\n", x.name, q.P99.Seconds())
		fmt.Fprintf(w, "bulwark_admission_request_duration_quantile_seconds{webhook=%q,quantile=\"1\"} %g\n", x.name, q.Max.Seconds())
	}
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	fmt.Fprintf(w, "# HELP bulwark_admission_decisions_total AdmissionReviews answered, by outcome.\n# TYPE bulwark_admission_decisions_total counter\n")
	fmt.Fprintf(w, "bulwark_admission_decisions_total{outcome=\"allowed\"} %d\n", m.allowed.Load())
	fmt.Fprintf(w, "bulwark_admission_decisions_total{outcome=\"denied\"} %d\n", m.denied.Load())
	fmt.Fprintf(w, "bulwark_admission_decisions_total{outcome=\"warned\"} %d\n", m.warned.Load())
	fmt.Fprintf(w, "bulwark_admission_decisions_total{outcome=\"error\"} %d\n", m.errors.Load())
	counter("bulwark_admission_cache_hits_total", "Image decisions answered from the cache of verified digests.", m.cacheHits.Load())
	counter("bulwark_admission_cache_misses_total", "Image decisions that needed a first-sight verification.", m.cacheMisses.Load())
	counter("bulwark_admission_registry_calls_total", "Registry resolutions and verifications started.", m.registryCalls.Load())
	counter("bulwark_admission_feed_errors_total", "Failed polls of the server's certification feed.", m.feedErrors.Load())
	fmt.Fprintf(w, "# HELP bulwark_admission_cached_digests Verified digests in the cache.\n# TYPE bulwark_admission_cached_digests gauge\nbulwark_admission_cached_digests %d\n", cached)
	fmt.Fprintf(w, "# HELP bulwark_admission_feed_last_sync_timestamp_seconds Time of the last successful feed poll (0: never).\n# TYPE bulwark_admission_feed_last_sync_timestamp_seconds gauge\nbulwark_admission_feed_last_sync_timestamp_seconds %d\n", lastSync)
}
