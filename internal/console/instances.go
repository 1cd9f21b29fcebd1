package console

import (
	"net/http"

	"github.com/bulwark-sec/bulwark/internal/instance"
)

// Instances lists confidential instances (an *instance.Tracker's List).
type Instances interface {
	List(workload string) []instance.Instance
}

type instancesPage struct {
	Enabled   bool
	Workload  string
	Instances []instance.Instance
	// Counts are instances per status.
	Counts map[instance.Status]int
}

// instances is the confidential instances page: every instance with its
// attestation status, the reason, where it runs and how that is known.
func (c *console) instances(r *http.Request) (any, error) {
	pg := instancesPage{Workload: r.URL.Query().Get("workload"), Counts: map[instance.Status]int{}}
	if c.opts.Instances == nil {
		return pg, nil
	}
	pg.Enabled = true
	pg.Instances = c.opts.Instances.List(pg.Workload)
	for _, in := range pg.Instances {
		pg.Counts[in.Status]++
	}
	return pg, nil
}
