package policy

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/match"
)

// TestRejudge: fresh findings change the vulnerabilities rule only, with
// waivers applied; a decision of another policy is refused.
func TestRejudge(t *testing.T) {
	p := mustParse(t, fullPolicy+`
waivers:
  - rule: vulnerabilities
    ids: [CVE-2024-0002]
    reason: not reachable
    owner: platform
    expires: 2027-01-31
`)
	in := goodInput()
	in.Config.Config.User = "" // non-root fails, and must stay failed
	prev, err := p.Evaluate(in)
	if err != nil {
		t.Fatal(err)
	}
	if status(t, prev, RuleVulnerabilities).Status != StatusPass || status(t, prev, RuleNonRoot).Status != StatusFail {
		t.Fatalf("setup: %+v", prev.Rules)
	}
	high := match.Finding{ID: "CVE-2024-0001", Severity: match.SeverityHigh, Status: match.StatusFixed,
		FixedVersion: "3.0.16", Package: match.PackageRef{Name: "openssl", Version: "3.0.15-1~deb12u1"}}
	d, err := p.Rejudge(prev, []match.Finding{high}, in.Repository, now)
	if err != nil {
		t.Fatal(err)
	}
	if r := status(t, d, RuleVulnerabilities); r.Status != StatusFail || len(r.Evidence) != 1 {
		t.Errorf("vulnerabilities after a new HIGH = %+v", r)
	}
	if status(t, d, RuleNonRoot).Status != StatusFail || d.Pass {
		t.Errorf("other rules changed or pass = %v", d.Pass)
	}
	if status(t, prev, RuleVulnerabilities).Status != StatusPass {
		t.Error("Rejudge modified the previous decision")
	}

	in.Config.Config.User = "1000"
	prev, _ = p.Evaluate(in)
	waived := high
	waived.ID = "CVE-2024-0002"
	d, _ = p.Rejudge(prev, []match.Finding{waived}, in.Repository, now)
	if r := status(t, d, RuleVulnerabilities); r.Status != StatusWaived || !d.Pass {
		t.Errorf("a waived finding: %+v, pass %v", r, d.Pass)
	}

	other := mustParse(t, `name: other`)
	if _, err := other.Rejudge(prev, nil, in.Repository, now); err == nil {
		t.Error("a decision of another policy was re-judged")
	}
}
