package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// signedImage pushes a random image to repoTag, signs it and attests a
// passing decision made an hour ago under policy sha256:p1. It returns the
// digest reference and the public key file.
func signedImage(t *testing.T, reg *registrytest.Registry, repoTag string) (name.Digest, string) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, repoTag, img)
	h, _ := img.Digest()
	d := ref.Context().Digest(h.String())

	priv, pub, err := sign.GenerateKey([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sign.LoadPrivateKey(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s := sign.NewKeySigner(key)
	ctx := context.Background()
	if err := sign.SignImage(ctx, d, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	pred, _ := json.Marshal(map[string]any{"time": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "policyDigest": "sha256:p1", "pass": true})
	if err := sign.AttestImage(ctx, d, s, sign.DecisionPredicateType, pred, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return d, pubFile
}

func TestVerifyCommand(t *testing.T) {
	reg := registrytest.New(t)
	d, pub := signedImage(t, reg, "cli/app:1")
	ref := reg.Ref("cli/app:1")

	stdout, stderr, code := runSub(t, newVerifyCmd, ref, "--key", pub, "--max-age", "2h", "--policy-digest", "sha256:p1")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{d.DigestStr(), "SIGNATURE", sign.DecisionPredicateType, "DECISION", "sha256:p1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}

	stdout, _, code = runSub(t, newVerifyCmd, ref, "--key", pub, "--format", "json")
	var r verifyReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != ExitOK {
		t.Fatalf("exit %d, json %q: %v", code, stdout, err)
	}
	if !r.Verified || r.Digest != d.DigestStr() || len(r.Signatures) != 1 {
		t.Errorf("report %+v", r)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		want   string
		reason string
	}{
		{"stale decision", []string{"--max-age", "30m"}, "old, more than 30m", "stale decision"},
		{"other policy", []string{"--policy-digest", "sha256:p2"}, "not sha256:p2", "policy digest mismatch"},
		{"missing attestation", []string{"--attestation", "https://cyclonedx.org/bom"}, "no https://cyclonedx.org/bom attestation", "missing attestation"},
	} {
		stdout, stderr, code := runSub(t, newVerifyCmd, append([]string{ref, "--key", pub, "--format", "json"}, tc.args...)...)
		if code != ExitFindings || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %s", tc.name, code, stderr)
		}
		var r verifyReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Verified || r.Error == "" || r.Reason != tc.reason {
			t.Errorf("%s: json %q (%v)", tc.name, stdout, err)
		}
	}

	// A moved tag is a failed verification (exit 1).
	img, _ := random.Image(256, 1)
	reg.Push(t, "cli/app:1", img)
	if _, stderr, code := runSub(t, newVerifyCmd, ref, "--key", pub); code != ExitFindings || !strings.Contains(stderr, "no signature") {
		t.Errorf("moved tag: exit %d, %s", code, stderr)
	}
	// The digest still verifies.
	if _, stderr, code := runSub(t, newVerifyCmd, d.String(), "--key", pub); code != ExitOK {
		t.Errorf("by digest: exit %d, %s", code, stderr)
	}

	// An unreachable registry is not a verification failure (exit 2).
	reg.Server.Close()
	if _, stderr, code := runSub(t, newVerifyCmd, d.String(), "--key", pub); code != ExitError {
		t.Errorf("closed registry: exit %d, %s", code, stderr)
	}
}

func TestVerifyCommandTrustPolicy(t *testing.T) {
	reg := registrytest.New(t)
	_, pub := signedImage(t, reg, "team/app:1")
	dir := filepath.Dir(pub)
	policy := filepath.Join(dir, "trust.yaml")
	body := "- repositories: [\"" + reg.Host + "/team/**\"]\n  keys: [key.pub]\n  attestations: [\"" + sign.DecisionPredicateType + "\"]\n"
	if err := os.WriteFile(policy, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runSub(t, newVerifyCmd, reg.Ref("team/app:1"), "--trust-policy", policy); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	img, _ := random.Image(256, 1)
	reg.Push(t, "other/app:1", img)
	if _, stderr, code := runSub(t, newVerifyCmd, reg.Ref("other/app:1"), "--trust-policy", policy); code != ExitFindings || !strings.Contains(stderr, "no entry of trust policy") {
		t.Errorf("uncovered repository: exit %d, %s", code, stderr)
	}
}

func TestVerifyCommandUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"127.0.0.1:1/x:1"},
		{"127.0.0.1:1/x:1", "--key", "a.pub", "--trust-policy", "t.yaml"},
		{"127.0.0.1:1/x:1", "--key", filepath.Join(dir, "missing.pub")},
		{"127.0.0.1:1/x:1", "--key", "a.pub", "--format", "sarif"},
		{"127.0.0.1:1/x:1", "--key", "a.pub", "--max-age", "-1h"},
	} {
		if _, stderr, code := runSub(t, newVerifyCmd, args...); code != ExitError {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}
