package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// TestCertifyVerify: the gold-image workflow end to end on an in-process
// registry: key generation, a failing certify that pushes nothing, a
// passing certify (with a waiver), verify, and verify failing after the tag
// moves.
func TestCertifyVerify(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BULWARK_PASSWORD", "correct horse battery staple")
	reg := registrytest.New(t)
	img, err := testimage.Image(fixtureLayers(t), fixtureHistory)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, "team/app:1", img)
	digest, _ := img.Digest()
	db := advisoryDB(t, nil)
	cache := filepath.Join(dir, "cache")

	prefix := filepath.Join(dir, "bulwark")
	if _, stderr, code := run(t, "key", "generate", "--output-key-prefix", prefix); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}

	strict := filepath.Join(dir, "strict.yaml")
	os.WriteFile(strict, []byte("name: strict\nbuiltins:\n  image-age: {maxDays: 3650}\n"), 0o644)
	stdout, stderr, code := run(t, "certify", ref.String(), "--key", prefix+".key", "--policy", strict, "--db", db, "--cache-dir", cache)
	if code != ExitFindings || !strings.Contains(stderr, "fails the policy (vulnerabilities); nothing was signed") {
		t.Fatalf("strict certify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// the decision table goes to stdout, as every command's report does
	if !strings.Contains(stdout, "FAIL (vulnerabilities) under policy strict") || strings.Contains(stderr, "FAIL (") {
		t.Errorf("strict certify: the decision table is not on stdout alone\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	digestRef, err := name.NewDigest(reg.Ref("team/app@" + digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	sigTag, _ := sign.SignatureTag(digestRef)
	if _, err := remote.Head(sigTag); err == nil {
		t.Fatal("a failed certify pushed a signature")
	}

	// the team accepts the critical minimist finding until a fix ships
	gold := filepath.Join(dir, "gold.yaml")
	os.WriteFile(gold, []byte(`name: gold
builtins:
  vulnerabilities: {maxSeverity: critical}
  image-age: {maxDays: 3650}
waivers:
  - rule: vulnerabilities
    images: ["`+reg.Host+`/team/**"]
    packages: [minimist]
    reason: argv is not attacker controlled in this service
    owner: platform-security@example.com
    expires: 2099-12-31
`), 0o644)
	stdout, stderr, code = run(t, "certify", ref.String(), "--key", prefix+".key", "--policy", gold, "--db", db, "--cache-dir", cache, "-f", "json")
	if code != 0 {
		t.Fatalf("gold certify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var cert certification
	if err := json.Unmarshal([]byte(stdout), &cert); err != nil {
		t.Fatal(err)
	}
	if cert.Digest != reg.Ref("team/app@"+digest.String()) || len(cert.Attestations) != 3 {
		t.Errorf("certification = %+v", cert)
	}

	// verify: the signature and all three attestations, by tag
	args := []string{"verify", ref.String(), "--key", prefix + ".pub", "--attestation", PredicateSBOM, "--attestation", PredicateScan, "--attestation", sign.DecisionPredicateType, "--max-age", "1h"}
	if stdout, stderr, code := run(t, args...); code != 0 {
		t.Fatalf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// the decision was made under the gold policy, not another one
	if _, stderr, code := run(t, append(args, "--policy-digest", "sha256:0000")...); code != ExitFindings {
		t.Errorf("verify with another policy digest: exit %d %s", code, stderr)
	}

	// the tag moves to an uncertified image: verify of the tag fails
	other, err := testimage.Image(fixtureLayers(t)[:1], fixtureHistory[:1])
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "team/app:1", other)
	if _, stderr, code := run(t, args...); code != ExitFindings {
		t.Errorf("verify after the tag moved: exit %d %s", code, stderr)
	}
}
