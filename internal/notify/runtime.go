package notify

import "time"

// Drift is the data of a runtime.drift event: execs a bulwark-agent
// refused (prevent) or reported (detect) because what was to run is not
// in the container's image. One event covers the execs of one batch with
// the same container, content and verdict (a storm of one drifted binary
// is one notification per batch, with its count).
type Drift struct {
	Node      string    `json:"node"`
	Container string    `json:"container"`
	Namespace string    `json:"namespace"`
	Image     string    `json:"image"` // manifest digest of the container's image
	Verdict   string    `json:"verdict"`
	Reason    string    `json:"reason"`
	Path      string    `json:"path"`              // of the first exec
	Content   string    `json:"content,omitempty"` // digest of what was to run
	Count     int       `json:"count"`
	FirstSeq  int64     `json:"firstSeq"`
	Time      time.Time `json:"time"` // of the first exec
}

// Drifted is the runtime.drift event of d. A zero d.Time is now.
func Drifted(d Drift) Event {
	d.Time = orNow(d.Time)
	return newEvent(EventDrift, d.Time, d.Node+"/"+d.Container, d)
}
