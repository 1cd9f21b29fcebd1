package policy

import "time"

// StatusUnknown is a rule that could not be decided for want of data: the
// vulnerabilities rule of an image judged without advisory data, or with
// data older than the configured maximum age. It fails the decision, as
// "0 findings" from no data is not a clean image.
const StatusUnknown Status = "unknown"

// AdvisoryData names the advisory database a decision's findings were
// matched against: its sources, record count and last update.
type AdvisoryData struct {
	Records int              `json:"records"`
	Updated time.Time        `json:"updated,omitzero"` // the newest source update; zero when never imported
	Sources []AdvisorySource `json:"sources"`
}

// AdvisorySource is one source of an advisory database.
type AdvisorySource struct {
	Name    string    `json:"name"`
	URL     string    `json:"url,omitempty"`
	Records int       `json:"records"`
	Updated time.Time `json:"updated,omitzero"`
}

// VulnerabilitiesUnknown marks d's vulnerabilities rule unknown with
// reason (why no advisory data backs its findings) and fails d. A rule
// disabled by the policy stays skipped.
func (d *Decision) VulnerabilitiesUnknown(reason string) {
	for i, r := range d.Rules {
		if r.Name != RuleVulnerabilities || r.Status == StatusSkipped {
			continue
		}
		d.Rules[i] = RuleResult{Name: r.Name, Description: r.Description, Status: StatusUnknown, Message: reason}
		d.Pass = false
	}
}
