package policy

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// TestInventoryCompleteRule: the rule is on by default, a waiver covers a
// damaged file by its path (and only that file), a policy may turn it off,
// and custom rules see inventory.complete and inventory.problems.
func TestInventoryCompleteRule(t *testing.T) {
	damaged := func() *Input {
		in := goodInput()
		in.SBOM.AddProblem(sbom.Problem{Cataloger: "dpkg-db-cataloger", Path: "/var/lib/dpkg/status", Line: 3, Message: "bad line"})
		return in
	}
	d, err := mustParse(t, "name: default\n").Evaluate(damaged())
	if err != nil {
		t.Fatal(err)
	}
	if r := status(t, d, RuleInventoryComplete); r.Status != StatusFail || d.Pass {
		t.Errorf("default policy: %s %v, want the decision to fail", r.Status, r.Evidence)
	}

	waived := mustParse(t, `name: w
waivers:
  - {rule: inventory-complete, ids: [/var/lib/dpkg/status], reason: known, owner: me, expires: 2099-01-01}
`)
	if d, _ := waived.Evaluate(damaged()); status(t, d, RuleInventoryComplete).Status != StatusWaived {
		t.Errorf("waived by path: %+v", status(t, d, RuleInventoryComplete))
	}
	other := damaged()
	other.SBOM.AddProblem(sbom.Problem{Cataloger: "npm-lock-cataloger", Path: "/app/package-lock.json", Line: 40, Message: "record does not parse"})
	if d, _ := waived.Evaluate(other); status(t, d, RuleInventoryComplete).Status != StatusFail {
		t.Errorf("a waiver for one file covers another: %+v", status(t, d, RuleInventoryComplete))
	}

	off := mustParse(t, "name: off\nbuiltins:\n  inventory-complete: {enabled: false}\n")
	if d, _ := off.Evaluate(damaged()); status(t, d, RuleInventoryComplete).Status != StatusSkipped {
		t.Errorf("disabled: %+v", status(t, d, RuleInventoryComplete))
	}

	custom := mustParse(t, `name: c
builtins:
  inventory-complete: {enabled: false}
rules:
  - name: complete
    condition: 'inventory.complete && size(inventory.problems) == 0'
`)
	for in, want := range map[*Input]Status{goodInput(): StatusPass, damaged(): StatusFail} {
		if d, _ := custom.Evaluate(in); status(t, d, "complete").Status != want {
			t.Errorf("custom rule on complete=%v: %+v, want %s", !in.SBOM.Incomplete, status(t, d, "complete"), want)
		}
	}
}
