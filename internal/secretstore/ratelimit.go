package secretstore

import (
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Per-identity rate of the workload API.
const (
	DefaultRate  = 50 // fetches a second, sustained
	DefaultBurst = 100
	// maxLimiters bounds the identities remembered; past it the map
	// starts again (a flood of distinct valid SVIDs needs the CA).
	maxLimiters = 100_000
)

type limiters struct {
	r         rate.Limit
	burst     int
	mu        sync.Mutex
	m         map[string]*rate.Limiter
	throttled atomic.Int64
}

func newLimiters(r float64, burst int) *limiters {
	return &limiters{r: rate.Limit(r), burst: burst, m: map[string]*rate.Limiter{}}
}

// allow takes a token of id's bucket.
func (l *limiters) allow(id string) bool {
	l.mu.Lock()
	lim := l.m[id]
	if lim == nil {
		if len(l.m) >= maxLimiters {
			clear(l.m)
		}
		lim = rate.NewLimiter(l.r, l.burst)
		l.m[id] = lim
	}
	l.mu.Unlock()
	if lim.Allow() {
		return true
	}
	l.throttled.Add(1)
	return false
}
