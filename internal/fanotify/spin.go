package fanotify

import (
	"sync/atomic"
	"time"
)

// DefaultSpin is how long a permission listener keeps reading after a
// batch, when spinning has been paying off: long enough for a dynamic
// program's loader to be opened after its program was allowed (measured
// in bench/agent), short enough that a quiet node spends no CPU on it.
const DefaultSpin = 50 * time.Microsecond

// spinCredit is how many fruitless spins in a row end spinning until a
// wake-up shows events following closely again.
const spinCredit = 4

// spinner decides whether Read spins before sleeping. A spin that finds an
// event, or a wake-up that came within max of the previous batch (a spin
// would have found it), restores the credit; a spin that finds nothing, or
// a wake-up that came later, spends one. With events further apart than max
// (a quiet node, a steady trickle) it stops spinning after spinCredit
// fruitless tries: the cost is bounded by spinCredit*max per close pair.
type spinner struct {
	max    atomic.Int64 // a time.Duration; zero: never spin
	credit atomic.Int32
}

func (s *spinner) limit() time.Duration { return time.Duration(s.max.Load()) }
func (s *spinner) want() bool           { return s.limit() > 0 && s.credit.Load() > 0 }
func (s *spinner) hit()       { s.credit.Store(spinCredit) }
func (s *spinner) miss() {
	if c := s.credit.Load(); c > 0 {
		s.credit.Store(c - 1)
	}
}

// woke records a wake-up from poll after gap.
func (s *spinner) woke(gap time.Duration) {
	if m := s.limit(); m > 0 && gap <= m {
		s.hit()
	} else {
		s.miss()
	}
}

// SetSpin sets how long Read keeps reading after a batch before it sleeps
// (DefaultSpin for New's listeners; zero never spins).
func (l *Listener) SetSpin(max time.Duration) { l.spin.max.Store(int64(max)) }
