package policy

import (
	"fmt"
	"slices"
	"time"
)

// Status of one rule in a decision.
type Status string

// Rule statuses.
const (
	StatusPass    Status = "pass"
	StatusFail    Status = "fail"
	StatusWaived  Status = "waived"
	StatusSkipped Status = "skipped" // the rule had nothing to check (e.g. no approved bases configured)
)

// RuleResult is one rule's verdict with its evidence.
type RuleResult struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Status      Status   `json:"status"`
	Message     string   `json:"message,omitempty"`
	Evidence    []string `json:"evidence,omitempty"`
	// Waived lists the evidence a waiver covered, and Waivers the waivers.
	Waived  []string `json:"waived,omitempty"`
	Waivers []Waiver `json:"waivers,omitempty"`
}

// Decision is the policy's verdict on one image.
type Decision struct {
	Policy       string       `json:"policy"`
	PolicyDigest string       `json:"policyDigest"`
	Image        string       `json:"image"`
	Digest       string       `json:"digest,omitempty"`
	Time         time.Time    `json:"time"`
	Pass         bool         `json:"pass"`
	Rules        []RuleResult `json:"rules"`
	// ExpiredWaivers would have applied had they not expired.
	ExpiredWaivers []Waiver `json:"expiredWaivers,omitempty"`
	// Advisories is the advisory database the findings came from, when
	// the caller recorded it (the server does).
	Advisories *AdvisoryData `json:"advisories,omitempty"`
}

// Failed returns the names of the failed rules (unknown ones included).
func (d *Decision) Failed() []string {
	var out []string
	for _, r := range d.Rules {
		if r.Status == StatusFail || r.Status == StatusUnknown {
			out = append(out, r.Name)
		}
	}
	return out
}

// Evaluate decides on in. It fails only on an evaluation error of a custom
// rule's CEL condition, which is also reported as a failed rule.
func (p *Policy) Evaluate(in *Input) (*Decision, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	base := baseDoc{}
	if ref, n := matchBase(in, p.Builtins.BaseImage.Approved); ref != "" {
		base = baseDoc{Matched: true, Reference: ref, Layers: n}
	}
	doc, err := in.document(base)
	if err != nil {
		return nil, fmt.Errorf("building the policy input: %w", err)
	}
	d := &Decision{Policy: p.Name, PolicyDigest: p.Digest, Time: in.Now.UTC().Truncate(time.Second), Pass: true}
	if in.SBOM != nil {
		d.Image, d.Digest = in.SBOM.Source.Name, in.SBOM.Source.Digest
	}
	expired := map[int]bool{}
	for _, b := range p.builtins() {
		r := RuleResult{Name: b.name, Description: b.description}
		if !b.on {
			r.Status, r.Message = StatusSkipped, "disabled by the policy"
			d.Rules = append(d.Rules, r)
			continue
		}
		vs, evidence, skip := b.check(in, doc)
		switch {
		case skip != "":
			r.Status, r.Message = StatusSkipped, skip
		case len(vs) == 0:
			r.Status, r.Evidence = StatusPass, []string{evidence}
		default:
			p.applyWaivers(&r, vs, in, expired)
		}
		d.Rules = append(d.Rules, r)
	}
	for _, rule := range p.Rules {
		r := RuleResult{Name: rule.Name, Description: rule.Description}
		ok, err := eval(rule.program, doc)
		switch {
		case err != nil:
			r.Status, r.Message = StatusFail, fmt.Sprintf("evaluating %s:%d: %v", p.File, rule.Line, err)
		case ok:
			r.Status = StatusPass
		default:
			msg := rule.Message
			if msg == "" {
				msg = "condition is false: " + rule.Condition
			}
			p.applyWaivers(&r, []violation{{text: msg}}, in, expired)
		}
		d.Rules = append(d.Rules, r)
	}
	for i, w := range p.Waivers {
		if expired[i] {
			d.ExpiredWaivers = append(d.ExpiredWaivers, w)
		}
	}
	for _, r := range d.Rules {
		if r.Status == StatusFail {
			d.Pass = false
		}
	}
	return d, nil
}

// applyWaivers sets r from its violations: waived when live waivers cover
// them all, failed otherwise. Expired waivers that would have covered a
// violation are recorded in expired.
func (p *Policy) applyWaivers(r *RuleResult, vs []violation, in *Input, expired map[int]bool) {
	var open []string
	used := map[int]bool{}
	for _, v := range vs {
		covered := false
		for i, w := range p.Waivers {
			if w.Rule != r.Name || !w.appliesTo(in.Repository) || !w.covers(v) {
				continue
			}
			if w.expired(in.Now) {
				expired[i] = true
				continue
			}
			covered, used[i] = true, true
			break
		}
		if covered {
			r.Waived = append(r.Waived, v.text)
		} else {
			open = append(open, v.text)
		}
	}
	for i, w := range p.Waivers {
		if used[i] {
			r.Waivers = append(r.Waivers, w)
		}
	}
	if len(open) == 0 {
		r.Status = StatusWaived
		return
	}
	r.Status, r.Evidence = StatusFail, open
}

func (w Waiver) appliesTo(repo string) bool {
	if len(w.Images) == 0 {
		return true
	}
	return slices.ContainsFunc(w.Images, func(g string) bool { return globMatch(g, repo) })
}

func (w Waiver) covers(v violation) bool {
	if len(w.Packages) == 0 && len(w.IDs) == 0 {
		return true
	}
	if v.pkg != "" && slices.Contains(w.Packages, v.pkg) {
		return true
	}
	for _, id := range append([]string{v.id}, v.aliases...) {
		if id != "" && slices.Contains(w.IDs, id) {
			return true
		}
	}
	return false
}

// expired: a date without a time of day is valid through that whole day.
func (w Waiver) expired(now time.Time) bool {
	end := w.Expires
	if end.Equal(end.Truncate(24 * time.Hour)) {
		end = end.Add(24 * time.Hour)
	}
	return !now.Before(end)
}
