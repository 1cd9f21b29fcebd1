package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// TestPolicyCheckDefaultDigest: without --policy the decision names the
// built-in policy by the digest of its canonical form, never the SHA-256 of
// the empty string.
func TestPolicyCheckDefaultDigest(t *testing.T) {
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := testimage.WriteDockerArchive(archive, "fixture:1", fixtureLayers(t), fixtureHistory); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, _ := run(t, "policy", "check", archive, "--no-db", "-f", "json", "--cache-dir", t.TempDir())
	var d policy.Decision
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatalf("decoding the decision: %v\n%s\n%s", err, stdout, stderr)
	}
	empty := sha256.Sum256(nil)
	def, err := policy.Parse("(built-in defaults)", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.PolicyDigest == "sha256:"+hex.EncodeToString(empty[:]) || d.PolicyDigest != def.Digest || d.Policy != policy.DefaultName {
		t.Errorf("decision under %q (%s), want %q (%s)", d.Policy, d.PolicyDigest, policy.DefaultName, def.Digest)
	}
}
