package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/match"
)

// TestDefaultPolicyDigest: without a policy file the decision names the
// built-in defaults by the digest of their canonical form, not the SHA-256
// of the empty string; the digest is stable and changes when a default does.
func TestDefaultPolicyDigest(t *testing.T) {
	empty := sha256.Sum256(nil)
	emptyDigest := "sha256:" + hex.EncodeToString(empty[:])

	p, err := Parse("(built-in defaults)", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest == emptyDigest {
		t.Fatalf("the default policy's digest is the SHA-256 of nothing: %s", p.Digest)
	}
	if p.Name != DefaultName {
		t.Errorf("name %q, want %q", p.Name, DefaultName)
	}
	d, err := p.Evaluate(goodInput())
	if err != nil {
		t.Fatal(err)
	}
	if d.PolicyDigest != p.Digest || d.Policy != DefaultName {
		t.Errorf("decision under %q (%s), want %q (%s)", d.Policy, d.PolicyDigest, DefaultName, p.Digest)
	}

	again, err := Parse("other", []byte("\n  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != p.Digest {
		t.Errorf("digest of the defaults not stable: %s then %s", p.Digest, again.Digest)
	}

	// A file stating different values is another policy, with another digest;
	// one stating a default value explicitly is its own file, hashed as such.
	stricter := mustParse(t, "builtins:\n  image-age:\n    maxDays: 30\n")
	if stricter.Digest == p.Digest || stricter.Digest == emptyDigest {
		t.Errorf("a policy file got the default digest %s", stricter.Digest)
	}
	// The digest covers the effective rules: a changed default changes it.
	changed := &Policy{Builtins: p.Builtins}
	changed.Builtins.ImageAge.MaxDays = 91
	if err := changed.digestDefaults(); err != nil {
		t.Fatal(err)
	}
	if changed.Digest == p.Digest {
		t.Error("a changed default kept the digest")
	}
}

// TestVulnerabilitiesMessageSingular: one finding below the threshold is
// "1 finding", not "1 findings".
func TestVulnerabilitiesMessageSingular(t *testing.T) {
	p := mustParse(t, "name: p\n")
	in := goodInput()
	in.Findings = []match.Finding{{ID: "CVE-2024-0001", Severity: match.SeverityLow, Package: match.PackageRef{Name: "lodash", Version: "4.17.21"}}}
	d, err := p.Evaluate(in)
	if err != nil {
		t.Fatal(err)
	}
	r := status(t, d, RuleVulnerabilities)
	found := false
	for _, e := range append([]string{r.Message}, r.Evidence...) {
		found = found || e == "1 finding, none at or above HIGH"
	}
	if r.Status != StatusPass || !found {
		t.Errorf("vulnerabilities: %s %q %q", r.Status, r.Message, r.Evidence)
	}
}
