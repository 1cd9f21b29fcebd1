package policy

import (
	"fmt"
	"slices"
	"time"

	"github.com/bulwark-sec/bulwark/internal/match"
)

// Rejudge is the decision prev would be with fresh findings: the
// vulnerabilities rule is evaluated again (with the policy's waivers, at
// now), every other rule keeps its result, since they depend on the image
// alone (inventory, config, layers) and the image has not changed. It is
// what the server runs when the advisory database changes, without the
// image's layers at hand. Custom CEL rules that read findings keep their
// earlier result; the next full scan re-evaluates them.
//
// prev must come from this policy (same digest); a decision of another
// policy is refused, because its rule set differs.
func (p *Policy) Rejudge(prev *Decision, findings []match.Finding, repository string, now time.Time) (*Decision, error) {
	if prev.PolicyDigest != p.Digest {
		return nil, fmt.Errorf("re-judging %s: decision of policy %s, not %s", prev.Digest, prev.PolicyDigest, p.Digest)
	}
	in := &Input{Repository: repository, Findings: findings, Now: now}
	d := *prev
	d.Time = now.UTC().Truncate(time.Second)
	d.Rules = slices.Clone(prev.Rules)
	d.ExpiredWaivers = nil
	expired := map[int]bool{}
	for i, r := range d.Rules {
		if r.Name != RuleVulnerabilities || r.Status == StatusSkipped {
			continue
		}
		nr := RuleResult{Name: r.Name, Description: r.Description}
		vs, evidence, _ := p.checkVulnerabilities(in, nil)
		if len(vs) == 0 {
			nr.Status, nr.Evidence = StatusPass, []string{evidence}
		} else {
			p.applyWaivers(&nr, vs, in, expired)
		}
		d.Rules[i] = nr
	}
	// Expired waivers of the other rules were found when they were
	// evaluated; keep those, add the vulnerability rule's.
	for _, w := range prev.ExpiredWaivers {
		if w.Rule != RuleVulnerabilities {
			d.ExpiredWaivers = append(d.ExpiredWaivers, w)
		}
	}
	for i, w := range p.Waivers {
		if expired[i] {
			d.ExpiredWaivers = append(d.ExpiredWaivers, w)
		}
	}
	d.Pass = true
	for _, r := range d.Rules {
		if r.Status == StatusFail {
			d.Pass = false
		}
	}
	return &d, nil
}

// VulnerabilityThreshold is the lowest severity the vulnerabilities rule
// fails on.
func (p *Policy) VulnerabilityThreshold() match.Severity {
	return p.Builtins.Vulnerabilities.severity
}
