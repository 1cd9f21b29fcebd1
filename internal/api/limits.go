package api

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Defaults of Limits' zero fields.
const (
	DefaultRate           = 20.0 // requests per second per token
	DefaultBurst          = 40
	DefaultRequestTimeout = 30 * time.Second
	// DefaultMatches bounds the findings matches computed at once, all
	// tokens together: each takes a core.
	DefaultMatches = 2
	// DefaultInFlight is the requests one token may have in progress.
	DefaultInFlight = 4
)

// StatusClientClosedRequest is the status logged and counted for a
// request whose client went away before the answer (nginx's 499); the
// client never sees it.
const StatusClientClosedRequest = 499

// Limits protect the server from one caller: a token bucket per token
// (429 with Retry-After past it), a timeout per request, and a bound on
// the findings matches running at once.
type Limits struct {
	// Rate is the requests per second each token may sustain, Burst how
	// many it may send at once; negative Rate: no rate limit.
	Rate  float64
	Burst int
	// RequestTimeout bounds every request but the advisory import (which
	// runs to its end whatever the client does); negative: none.
	RequestTimeout time.Duration
	// Matches bounds the findings matches computed at once.
	Matches int
	// InFlight bounds the requests one token has in progress at once
	// (429 past it), so that one client's flood cannot take every core.
	InFlight int
}

func (l *Limits) fill() {
	if l.Rate == 0 {
		l.Rate = DefaultRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultBurst
	}
	if l.RequestTimeout == 0 {
		l.RequestTimeout = DefaultRequestTimeout
	}
	if l.Matches <= 0 {
		l.Matches = DefaultMatches
	}
	if l.InFlight <= 0 {
		l.InFlight = DefaultInFlight
	}
}

// UseLimits sets the limits (zero fields: the defaults). Call it before
// serving.
func (h *Handler) UseLimits(l Limits) {
	l.fill()
	h.limits = l
	h.buckets = &buckets{rate: l.Rate, burst: float64(l.Burst), inFlight: l.InFlight, m: map[string]*bucket{}}
	h.matches = make(chan struct{}, l.Matches)
}

// buckets are the token buckets of the callers, by Principal.bucket.
type buckets struct {
	rate, burst float64
	inFlight    int
	mu          sync.Mutex
	m           map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	busy   int // requests in progress
	polls  int // long polls in progress
}

// maxPollsPerToken bounds the long polls one token holds at once: an
// agent holds one; without a bound one token could hold a share of the
// feed's MaxWaiters and have the other agents' polls refused as busy.
const maxPollsPerToken = 8

// enter counts a request of token id in progress (a long poll when poll),
// unless it has inFlight of them (maxPollsPerToken) already; leave ends it.
func (b *buckets) enter(id string, poll bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.m[id]
	if k == nil {
		return true // take created it unless rate limits are off
	}
	n, limit := &k.busy, b.inFlight
	if poll {
		n, limit = &k.polls, maxPollsPerToken
	}
	if *n >= limit {
		return false
	}
	*n++
	return true
}

func (b *buckets) leave(id string, poll bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.m[id]
	if k == nil {
		return
	}
	n := &k.busy
	if poll {
		n = &k.polls
	}
	if *n > 0 {
		*n--
	}
}

// take spends one request of token id's bucket at now: ok, or how long
// until the next request is allowed.
func (b *buckets) take(id string, now time.Time) (ok bool, wait time.Duration) {
	if b.rate < 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k, found := b.m[id]
	if !found {
		if len(b.m) > 100_000 { // bounded: drop the idle ones
			for id, old := range b.m {
				if old.busy == 0 && old.polls == 0 && now.Sub(old.last).Seconds()*b.rate >= b.burst {
					delete(b.m, id)
				}
			}
		}
		k = &bucket{tokens: b.burst, last: now}
		b.m[id] = k
	}
	k.tokens = math.Min(b.burst, k.tokens+now.Sub(k.last).Seconds()*b.rate)
	k.last = now
	if k.tokens >= 1 {
		k.tokens--
		return true, 0
	}
	return false, time.Duration((1 - k.tokens) / b.rate * float64(time.Second))
}

// longPollRoute waits up to agentproto.MaxChangesWait by design: exempt
// from the request timeout and the in-flight bound, still rate limited.
const longPollRoute = "GET /api/v1/identity/changes"

// limit applies the caller's token bucket (after authentication, so the
// bucket is the token's) and the request timeout.
func (h *Handler) limit(pattern string, next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if h.buckets != nil {
			id := principal(r.Context()).bucket()
			if ok, wait := h.buckets.take(id, time.Now()); !ok {
				secs := int(math.Ceil(wait.Seconds()))
				w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
				return errorf(http.StatusTooManyRequests, nil, "rate limit of this token exceeded (%g requests/s, burst %d); retry after %d s", h.limits.Rate, h.limits.Burst, max(secs, 1))
			}
			// An agent holds a long poll all the time: it is no request in
			// progress for the in-flight bound, but has its own.
			poll := pattern == longPollRoute
			if !h.buckets.enter(id, poll) {
				w.Header().Set("Retry-After", "1")
				if poll {
					return errorf(http.StatusTooManyRequests, nil, "this token holds %d long polls already; retry after 1 s", maxPollsPerToken)
				}
				return errorf(http.StatusTooManyRequests, nil, "this token has %d requests in progress already; retry after 1 s", h.limits.InFlight)
			}
			defer h.buckets.leave(id, poll)
		}
		if h.limits.RequestTimeout > 0 && pattern != "POST /api/v1/advisories/import" && pattern != longPollRoute {
			ctx, cancel := context.WithTimeout(r.Context(), h.limits.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		return next(w, r)
	}
}

// acquireMatch takes one of the match slots, or fails when ctx ends
// first.
func (h *Handler) acquireMatch(ctx context.Context) (release func(), err error) {
	if h.matches == nil {
		return func() {}, nil
	}
	select {
	case h.matches <- struct{}{}:
		return func() { <-h.matches }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
