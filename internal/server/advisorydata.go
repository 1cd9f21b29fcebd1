package server

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/vulndb"
)

// DefaultAdvisoryMaxAge is how old the advisory data may be before the
// vulnerabilities rule is unknown (Config.AdvisoryMaxAge).
const DefaultAdvisoryMaxAge = 7 * 24 * time.Hour

// advisoryStatusTTL bounds how long a cached status of the advisory
// database is used; the updater refreshes it after each import.
const advisoryStatusTTL = 30 * time.Second

// advisoryData is what decisions and findings say about the advisory
// database they were made with: its sources, record count and last update
// (read from the database, cached), the version the API memoizes findings
// by, and whether the data can back a decision at all.
type advisoryData struct {
	adb    *vulndb.DB
	maxAge time.Duration // <= 0: no maximum
	now    func() time.Time

	mu     sync.Mutex
	cached api.AdvisoryStatus
	read   time.Time // zero: read again
	gen    int64     // bumped by invalidate
}

// invalidate makes the next status read the database again: the updater
// calls it after every import.
func (a *advisoryData) invalidate() {
	a.mu.Lock()
	a.read = time.Time{}
	a.gen++
	a.mu.Unlock()
}

// status is the database's status now (api.AdvisoryStatus).
func (a *advisoryData) status(ctx context.Context) (api.AdvisoryStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.read.IsZero() || now.Sub(a.read) > advisoryStatusTTL {
		st, err := a.adb.Status(ctx)
		if err != nil {
			return api.AdvisoryStatus{}, fmt.Errorf("reading the advisory database's status: %w", err)
		}
		d := policy.AdvisoryData{Records: st.Records, Updated: st.Updated.UTC(), Sources: []policy.AdvisorySource{}}
		for _, s := range st.Sources {
			d.Sources = append(d.Sources, policy.AdvisorySource{Name: s.Name, URL: s.URL, Records: s.Records, Updated: s.Updated.UTC()})
		}
		a.cached = api.AdvisoryStatus{
			Data: d,
			// Records and the newest update change with every import that
			// changes something; gen with every import this process ran.
			Version: strconv.Itoa(st.Records) + "." + strconv.FormatInt(st.Updated.UnixNano(), 36) + "." + strconv.FormatInt(a.gen, 36),
		}
		a.read = now
	}
	s := a.cached
	s.Unusable = unusable(s.Data, a.maxAge, now)
	return s, nil
}

// unusable says why data cannot back a decision ("" when it can): no
// record at all, or older than maxAge.
func unusable(d policy.AdvisoryData, maxAge time.Duration, now time.Time) string {
	if d.Records == 0 {
		return "no advisory data: the server's advisory database is empty (configure --advisory-source, then POST /api/v1/advisories/import)"
	}
	if maxAge > 0 && !d.Updated.IsZero() && now.Sub(d.Updated) > maxAge {
		return fmt.Sprintf("advisory data too old: last updated %s (%s ago), the maximum age is %s (--advisory-max-age)",
			d.Updated.Format(time.RFC3339), now.Sub(d.Updated).Round(time.Minute), maxAge)
	}
	return ""
}

// withAdvisories records on d the advisory data it was made with and,
// when that data cannot back a decision, makes its vulnerabilities rule
// unknown, which fails it: no data is not a clean image.
func withAdvisories(d *policy.Decision, st api.AdvisoryStatus) {
	data := st.Data
	d.Advisories = &data
	if st.Unusable != "" {
		d.VulnerabilitiesUnknown(st.Unusable)
	}
}
