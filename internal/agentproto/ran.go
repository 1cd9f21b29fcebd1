package agentproto

import (
	"fmt"
	"time"
)

// Bounds of what ran, in one heartbeat.
const (
	// MaxRanPerContainer is the distinct programs kept per container; past
	// it new ones are counted in Container.RanDropped, not listed.
	MaxRanPerContainer = 64
	// MaxRanTotal is the programs listed over all containers of one
	// heartbeat (the body stays under a few MB).
	MaxRanTotal = 10000
)

// Ran is one program that ran in a container since the agent watched it:
// its content digest (empty when only the exec sensor saw it, under
// BPF-LSM), a path it ran from (the first seen, or the image path holding
// that content), how many execs, and when the first and last were.
type Ran struct {
	Path   string    `json:"path"`
	Digest string    `json:"digest,omitempty"`
	Count  uint64    `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

// validateRan checks a container's list of what ran.
func validateRan(id string, ran []Ran) error {
	if len(ran) > MaxRanPerContainer {
		return invalid("container %s: %d programs ran, at most %d listed", id, len(ran), MaxRanPerContainer)
	}
	for _, r := range ran {
		for _, f := range [][2]string{{"ran path", r.Path}, {"ran digest", r.Digest}} {
			if err := field(f[0], f[1]); err != nil {
				return fmt.Errorf("container %s: %w", id, err)
			}
		}
		if r.Count == 0 || r.First.IsZero() || r.Last.Before(r.First) {
			return invalid("container %s: ran %.64q: count %d, first %s, last %s", id, r.Path, r.Count, r.First, r.Last)
		}
	}
	return nil
}
