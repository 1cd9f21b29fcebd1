package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/bulwark-sec/bulwark/internal/nodeauth"
)

// Metrics are the server's Prometheus metrics, written in the text
// exposition format by hand: a handful of counters and one gauge do not
// justify the client library's dependency tree.
type Metrics struct {
	JobsClaimed   atomic.Int64
	JobsCompleted atomic.Int64
	JobsFailed    atomic.Int64
	// LayersStreamed and LayersFromCache count the layers scans read in a
	// streaming pass and those taken from the layer results cache.
	LayersStreamed  atomic.Int64
	LayersFromCache atomic.Int64

	mu       sync.Mutex
	requests map[requestKey]int64

	// Images returns the number of images stored, read at scrape time.
	Images func(ctx context.Context) (int64, error)

	agentTokens func() nodeauth.Counts // set by UseAgentAuth (agentauth.go)
}

type requestKey struct {
	route string
	code  int
}

// observe counts one HTTP request answered on route with code.
func (m *Metrics) observe(route string, code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.requests == nil {
		m.requests = make(map[requestKey]int64)
	}
	m.requests[requestKey{route, code}]++
}

// WriteTo writes every metric in the Prometheus text format (0.0.4).
func (m *Metrics) write(ctx context.Context, w io.Writer) error {
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("bulwark_jobs_claimed_total", "Scan jobs claimed by this server's workers.", m.JobsClaimed.Load())
	counter("bulwark_jobs_completed_total", "Scan jobs completed by this server's workers.", m.JobsCompleted.Load())
	counter("bulwark_jobs_failed_total", "Scan job runs that failed (the job is retried or marked failed).", m.JobsFailed.Load())
	counter("bulwark_layers_streamed_total", "Image layers scans read (downloaded and decompressed) in a streaming pass.", m.LayersStreamed.Load())
	counter("bulwark_layers_cached_total", "Image layers scans took from the layer results cache, not downloaded or decompressed.", m.LayersFromCache.Load())

	m.mu.Lock()
	keys := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b requestKey) int {
		if a.route != b.route {
			if a.route < b.route {
				return -1
			}
			return 1
		}
		return a.code - b.code
	})
	fmt.Fprintf(w, "# HELP bulwark_http_requests_total HTTP requests by route and status code.\n# TYPE bulwark_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(w, "bulwark_http_requests_total{route=%s,code=\"%d\"} %d\n", strconv.Quote(k.route), k.code, m.requests[k])
	}
	m.mu.Unlock()

	if m.agentTokens != nil {
		c := m.agentTokens()
		fmt.Fprintf(w, "# HELP bulwark_agent_token_reviews_total Agents' service account tokens by answer: cached, reviewed (accepted by a review), refused, unavailable (the cluster could not be asked).\n# TYPE bulwark_agent_token_reviews_total counter\n")
		for _, v := range []struct {
			result string
			n      int64
		}{{"cached", c.Cached}, {"reviewed", c.Reviewed}, {"refused", c.Refused}, {"unavailable", c.Unavailable}} {
			fmt.Fprintf(w, "bulwark_agent_token_reviews_total{result=%q} %d\n", v.result, v.n)
		}
	}

	if m.Images != nil {
		n, err := m.Images(ctx)
		if err != nil {
			return fmt.Errorf("counting images: %w", err)
		}
		fmt.Fprintf(w, "# HELP bulwark_images_stored Images (digests) in the store.\n# TYPE bulwark_images_stored gauge\nbulwark_images_stored %d\n", n)
	}
	return nil
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// instrument counts requests by the mux pattern that matched them (so
// /api/v1/jobs/7 and /api/v1/jobs/8 are one series) and logs each at debug.
func (m *Metrics) instrument(log *slog.Logger, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		mux.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.observe(route, rec.code)
		log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route, "code", rec.code)
	})
}
