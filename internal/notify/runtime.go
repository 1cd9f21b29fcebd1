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
	// Tree is the first exec's caller and its ancestors ("42 sh < 7 app").
	Tree string `json:"tree,omitempty"`
}

// Drifted is the runtime.drift event of d. A zero d.Time is now.
func Drifted(d Drift) Event {
	d.Time = orNow(d.Time)
	return newEvent(EventDrift, d.Time, d.Node+"/"+d.Container, d)
}

// Running is a workload running a digest, as a revocation names it.
type Running struct {
	Node         string `json:"node"`
	Container    string `json:"container"`
	Pod          string `json:"pod,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
	Application  string `json:"application,omitempty"`
}

// Response is the data of a runtime.response event: what the runtime
// response policy chose for a drift or a revocation, and what became of
// it (docs/runtime.md).
type Response struct {
	ID        int64     `json:"id"`
	Trigger   string    `json:"trigger"` // drift, revoked
	Action    string    `json:"action"`  // alert, replace, rollback, quarantine
	State     string    `json:"state"`   // planned, done, failed, skipped
	DryRun    bool      `json:"dryRun,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Pod       string    `json:"pod,omitempty"`
	Owner     string    `json:"owner,omitempty"`
	Node      string    `json:"node,omitempty"`
	Container string    `json:"container,omitempty"`
	Image     string    `json:"image,omitempty"`
	Target    string    `json:"target,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Time      time.Time `json:"time"`
}

// Responded is the runtime.response event of r. A zero r.Time is now.
func Responded(r Response) Event {
	r.Time = orNow(r.Time)
	subject := r.Namespace + "/" + r.Pod
	if r.Owner != "" {
		subject = r.Namespace + "/" + r.Owner
	}
	return newEvent(EventResponse, r.Time, subject, r)
}
