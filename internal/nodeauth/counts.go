package nodeauth

import (
	"errors"
	"sync/atomic"
)

// Counts are what a Reviewer answered since it started, for the metrics.
type Counts struct {
	// Cached: from the cache; Reviewed: accepted after a review; Refused:
	// refused (early or by the cluster); Unavailable: the cluster could
	// not be asked.
	Cached, Reviewed, Refused, Unavailable int64
}

type counters struct{ cached, reviewed, refused, unavailable atomic.Int64 }

func (c *counters) count(cached bool, err error) {
	var unavailable *UnavailableError
	switch {
	case err == nil && cached:
		c.cached.Add(1)
	case err == nil:
		c.reviewed.Add(1)
	case errors.As(err, &unavailable):
		c.unavailable.Add(1)
	default:
		c.refused.Add(1)
	}
}

// Counts returns the counts so far.
func (r *Reviewer) Counts() Counts {
	return Counts{Cached: r.counts.cached.Load(), Reviewed: r.counts.reviewed.Load(),
		Refused: r.counts.refused.Load(), Unavailable: r.counts.unavailable.Load()}
}
