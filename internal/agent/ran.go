package agent

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// ranLog is what ran in one container since the agent watched it: per
// content digest (the fanotify decisions, after the exec is answered) or,
// where the kernel decides without the agent (BPF-LSM), per path from the
// exec sensor. At most agentproto.MaxRanPerContainer programs are kept;
// execs of others are counted. Its zero value is ready.
type ranLog struct {
	mu      sync.Mutex
	byKey   map[ranKey]*ranEntry
	dropped uint64
}

// ranKey is a content digest, or (from the sensor) a path with no digest.
type ranKey struct {
	digest allowlist.Digest
	path   string
}

type ranEntry struct {
	path, digest string
	count        uint64
	first, last  time.Time
}

// exec records an exec of content d from path.
func (r *ranLog) exec(d allowlist.Digest, path string) { r.record(ranKey{digest: d}, path) }

// sensed records an exec of path the exec sensor saw (no digest).
func (r *ranLog) sensed(path string) { r.record(ranKey{path: path}, path) }

func (r *ranLog) record(k ranKey, path string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byKey[k]
	if e == nil {
		if len(r.byKey) >= agentproto.MaxRanPerContainer {
			r.dropped++
			return
		}
		if r.byKey == nil {
			r.byKey = map[ranKey]*ranEntry{}
		}
		e = &ranEntry{path: path, first: now}
		if k.path == "" {
			e.digest = k.digest.String()
		}
		r.byKey[k] = e
	}
	e.count++
	e.last = now
}

// snapshot lists at most limit programs, most execs first, and the execs
// not listed for the bound.
func (r *ranLog) snapshot(limit int) ([]agentproto.Ran, uint64) {
	r.mu.Lock()
	out := make([]agentproto.Ran, 0, len(r.byKey))
	for _, e := range r.byKey {
		out = append(out, e.ran())
	}
	dropped := r.dropped
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b agentproto.Ran) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Digest, b.Digest))
	})
	if len(out) > limit {
		for _, x := range out[limit:] {
			dropped += x.Count
		}
		out = out[:max(limit, 0)]
	}
	return out, dropped
}

func (e *ranEntry) ran() agentproto.Ran {
	return agentproto.Ran{Path: e.path, Digest: e.digest, Count: e.count, First: e.first.UTC(), Last: e.last.UTC()}
}
