package nodeauth

import (
	"sync"
	"time"
)

// cache holds successful reviews by the SHA-256 of the token (never the
// token), each until its own deadline. Looking a hash up in a map is no
// comparison of secrets: finding which stored hash is near another's
// bytes tells nothing of a token (a preimage of SHA-256).
type cache struct {
	max int

	mu sync.Mutex
	m  map[[32]byte]cached
}

type cached struct {
	agent Agent
	until time.Time
}

func newCache(max int) *cache { return &cache{max: max, m: map[[32]byte]cached{}} }

func (c *cache) get(key [32]byte, now time.Time) (Agent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return Agent{}, false
	}
	if !now.Before(e.until) {
		delete(c.m, key)
		return Agent{}, false
	}
	return e.agent, true
}

// put stores a review until until; when full, the expired entries go, and
// when none has, every entry (the agents review again, once).
func (c *cache) put(key [32]byte, a Agent, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[key] = cached{agent: a, until: until}
}

// len is the number of entries, expired ones included.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
