package notify

import "time"

// EventDataAccess is a governance alert: a service reached a data store
// without a grant of a class it holds, or from outside the class's
// allowed regions (internal/governance).
const EventDataAccess = "governance.violation"

// DataAccess is the data of a governance.violation event.
type DataAccess struct {
	Kind        string    `json:"kind"` // "ungranted" or "residency"
	Service     string    `json:"service"`
	Store       string    `json:"store"`
	Class       string    `json:"class"`
	Regulations []string  `json:"regulations"`
	Node        string    `json:"node"`
	Container   string    `json:"container"`
	Region      string    `json:"region"`
	Detail      string    `json:"detail"`
	Time        time.Time `json:"time"`
}

// DataAccessViolated is the governance.violation event of d; a zero d.Time
// is now.
func DataAccessViolated(d DataAccess) Event {
	d.Time = orNow(d.Time)
	d.Regulations = nonNil(d.Regulations)
	return newEvent(EventDataAccess, d.Time, d.Service+"->"+d.Store, d)
}
