package match

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/osv"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// Source gives the advisories of one package; vulndb.DB is one.
type Source interface {
	Lookup(ctx context.Context, ecosystem, name string) ([]*osv.Record, error)
}

// Status of a finding.
const (
	StatusFixed   = "fixed"   // a fixed version exists
	StatusUnfixed = "unfixed" // affected, and no fix is published
)

// Finding is one vulnerability in one package.
type Finding struct {
	// ID is the preferred name: the CVE when there is one.
	ID string `json:"id"`
	// Aliases are every other id of the merged records (GHSA, GO-, DSA...).
	Aliases []string `json:"aliases,omitempty"`
	// Advisories are the ids of the records that matched.
	Advisories []string `json:"advisories"`
	Summary    string   `json:"summary,omitempty"`
	Severity   Severity `json:"severity"`
	CVSS       *CVSS    `json:"cvss,omitempty"`
	Status     string   `json:"status"`
	// FixedVersion is the version that fixes it, for the installed version.
	FixedVersion string `json:"fixedVersion,omitempty"`

	Package   PackageRef `json:"package"`
	Ecosystem string     `json:"ecosystem"`
	// Suppression is the VEX statement that suppressed the finding.
	Suppression *Suppression `json:"suppression,omitempty"`
}

// PackageRef names the package a finding is about.
type PackageRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Type    string `json:"type"`
	PURL    string `json:"purl"`
	// Source is the source package advisories were matched on (distros).
	Source   string `json:"source,omitempty"`
	Location string `json:"location,omitempty"`
	Layer    string `json:"layer,omitempty"`
}

// AllIDs returns the finding's id and aliases.
func (f Finding) AllIDs() []string { return append([]string{f.ID}, f.Aliases...) }

// Result is the outcome of matching one inventory.
type Result struct {
	Findings   []Finding `json:"findings"`
	Suppressed []Finding `json:"suppressed,omitempty"`
	// Warnings name records or versions that could not be evaluated.
	Warnings []string `json:"warnings,omitempty"`
}

// Match finds the vulnerabilities of every package in s.
func Match(ctx context.Context, src Source, s *sbom.SBOM) (*Result, error) {
	res := &Result{Findings: []Finding{}}
	type key struct{ eco, name string }
	cache := map[key][]*osv.Record{}
	for _, p := range s.Packages {
		q, ok := osv.QueryFor(p, s.Distro)
		if !ok {
			continue
		}
		k := key{q.Ecosystem, q.Name}
		recs, seen := cache[k]
		if !seen {
			var err error
			if recs, err = src.Lookup(ctx, q.Ecosystem, q.Name); err != nil {
				return nil, fmt.Errorf("looking up %s %s: %w", q.Ecosystem, q.Name, err)
			}
			cache[k] = recs
		}
		var hits []hit
		for _, r := range recs {
			if r.IsWithdrawn() {
				continue
			}
			if h, ok, err := evaluateRecord(r, q); err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: version %q of %s: %v", r.ID, q.Version, q.Name, err))
			} else if ok {
				hits = append(hits, h)
			}
		}
		res.Findings = append(res.Findings, merge(hits, p, q)...)
	}
	res.Sort()
	return res, nil
}

// evaluateRecord decides whether r affects the queried version. A record may
// list the same package in several affected entries (one per release line):
// it affects the version when any entry does, and the fix is the lowest fix
// among those entries.
func evaluateRecord(r *osv.Record, q osv.Query) (hit, bool, error) {
	var h hit
	affected := false
	for _, a := range r.Affected {
		if eco, name := osv.Key(a.Package.Ecosystem, a.Package.Name); eco != q.Ecosystem || name != q.Name {
			continue
		}
		v, err := evaluate(a, q.Ecosystem, q.Version)
		if err != nil {
			return hit{}, false, err
		}
		if !v.affected {
			continue
		}
		sev, cvss := rate(r, a)
		if !affected || sev > h.sev {
			h.sev, h.cvss = sev, cvss
		}
		if v.fixed != "" && (h.fixed == "" || versionLess(baseEcosystem(q.Ecosystem), v.fixed, h.fixed)) {
			h.fixed = v.fixed
		}
		affected = true
	}
	h.rec = r
	return h, affected, nil
}

type hit struct {
	rec   *osv.Record
	fixed string
	sev   Severity
	cvss  *CVSS
}

// merge groups the records that name the same vulnerability (sharing an id,
// alias or upstream id) into one finding.
func merge(hits []hit, p sbom.Package, q osv.Query) []Finding {
	group := make([]int, len(hits))
	for i := range group {
		group[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if group[i] != i {
			group[i] = find(group[i])
		}
		return group[i]
	}
	owner := map[string]int{}
	for i, h := range hits {
		for _, id := range idsOf(h.rec) {
			if j, ok := owner[id]; ok {
				group[find(i)] = find(j)
			} else {
				owner[id] = i
			}
		}
	}
	byGroup := map[int][]hit{}
	var order []int
	for i, h := range hits {
		g := find(i)
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], h)
	}
	ref := PackageRef{Name: p.Name, Version: p.Version, Type: p.Type, PURL: p.PURL, Layer: p.Layer}
	if p.Source != nil && p.Source.Name != p.Name {
		ref.Source = p.Source.Name
	}
	if len(p.Locations) > 0 {
		ref.Location = p.Locations[0].Path
	}
	var out []Finding
	for _, g := range order {
		out = append(out, finding(byGroup[g], ref, q, p))
	}
	return out
}

func idsOf(r *osv.Record) []string {
	return slices.Concat([]string{r.ID}, r.Aliases, r.Upstream)
}

func finding(hits []hit, ref PackageRef, q osv.Query, p sbom.Package) Finding {
	f := Finding{Package: ref, Ecosystem: q.Ecosystem, Status: StatusUnfixed}
	ids := map[string]bool{}
	for _, h := range hits {
		f.Advisories = append(f.Advisories, h.rec.ID)
		for _, id := range idsOf(h.rec) {
			ids[id] = true
		}
		if h.sev > f.Severity || (h.sev == f.Severity && f.CVSS == nil && h.cvss != nil) {
			f.Severity, f.CVSS = h.sev, h.cvss
		}
		if f.Summary == "" {
			f.Summary = h.rec.Summary
		}
		// the highest fix among the records, so that it fixes them all
		if h.fixed != "" && (f.FixedVersion == "" || versionLess(baseEcosystem(q.Ecosystem), f.FixedVersion, h.fixed)) {
			f.FixedVersion = h.fixed
		}
	}
	if f.FixedVersion != "" {
		f.Status = StatusFixed
	}
	all := make([]string, 0, len(ids))
	for id := range ids {
		all = append(all, id)
	}
	slices.SortFunc(all, func(a, b string) int { return cmp.Or(cmp.Compare(idRank(a), idRank(b)), cmp.Compare(a, b)) })
	f.ID, f.Aliases = all[0], all[1:]
	slices.Sort(f.Advisories)
	return f
}

// idRank prefers CVE ids, then GHSA, then the rest.
func idRank(id string) int {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return 0
	case strings.HasPrefix(id, "GHSA-"):
		return 1
	}
	return 2
}

// Sort orders findings by severity (highest first), package, id.
func (r *Result) Sort() {
	order := func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(b.Severity, a.Severity),
			cmp.Compare(a.Package.Name, b.Package.Name),
			cmp.Compare(a.Package.Version, b.Package.Version),
			cmp.Compare(a.Package.Location, b.Package.Location),
			cmp.Compare(a.ID, b.ID),
		)
	}
	slices.SortFunc(r.Findings, order)
	slices.SortFunc(r.Suppressed, order)
}

// Filter keeps findings at or above min and, when ignoreUnfixed, only those
// with a fix. Suppressed findings are filtered the same way.
func (r *Result) Filter(min Severity, ignoreUnfixed bool) {
	keep := func(f Finding) bool {
		return f.Severity >= min && (!ignoreUnfixed || f.Status == StatusFixed)
	}
	r.Findings = slices.DeleteFunc(r.Findings, func(f Finding) bool { return !keep(f) })
	r.Suppressed = slices.DeleteFunc(r.Suppressed, func(f Finding) bool { return !keep(f) })
}

// Highest returns the highest severity among the findings, and false when
// there are none.
func (r *Result) Highest() (Severity, bool) {
	if len(r.Findings) == 0 {
		return SeverityUnknown, false
	}
	h := SeverityUnknown
	for _, f := range r.Findings {
		h = max(h, f.Severity)
	}
	return h, true
}
