package notify

import "time"

// EventFuzzFindings: a fuzz campaign against an application's registered
// API ended with findings. The event names the application's owner (team,
// contact) so that a receiver can route it; it carries the findings' rule,
// severity and operation, never a response body (the campaign's report,
// GET .../fuzz-campaigns/{id}, has the shrunk requests and curl lines).
const EventFuzzFindings = "fuzz.findings"

// FuzzFindings is the data of a fuzz.findings event.
type FuzzFindings struct {
	Application string `json:"application"`
	Team        string `json:"team,omitempty"`
	Contact     string `json:"contact,omitempty"`
	Campaign    int64  `json:"campaign"`
	// Report is the API path of the campaign and its report.
	Report   string           `json:"report"`
	Target   string           `json:"target"`
	Requests int              `json:"requests"`
	Findings []FuzzFindingRef `json:"findings"`
	// More counts the findings left out of Findings (at most 50 are
	// listed).
	More int       `json:"more,omitempty"`
	Time time.Time `json:"time"`
}

// FuzzFindingRef is one finding as the event lists it.
type FuzzFindingRef struct {
	Rule      string `json:"rule"`
	Severity  string `json:"severity"`
	Operation string `json:"operation"`
}

// FuzzFound is the fuzz.findings event of f. A zero f.Time is now.
func FuzzFound(f FuzzFindings) Event {
	f.Time = orNow(f.Time)
	if f.Findings == nil {
		f.Findings = []FuzzFindingRef{}
	}
	return newEvent(EventFuzzFindings, f.Time, "application:"+f.Application, f)
}
