package sign_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// The tests in this file check interoperability with the cosign CLI
// (v2.6.5, built by bench/build-peers.sh). They skip when no cosign
// binary is found: $BULWARK_COSIGN, then cosign on PATH, then
// $HOME/.cache/bulwark-peers/bin/cosign. BULWARK_REQUIRE_COSIGN=1 turns
// the skip into a failure, for CI runs that built cosign.

const cosignPassphrase = "interop-passphrase"

func cosignBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BULWARK_COSIGN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("BULWARK_COSIGN: %v", err)
		}
		return p
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "bulwark-peers", "bin", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("BULWARK_REQUIRE_COSIGN") == "1" {
		t.Fatal("no cosign binary and BULWARK_REQUIRE_COSIGN=1: set BULWARK_COSIGN, or run bench/build-peers.sh cosign")
	}
	t.Skip("no cosign binary: set BULWARK_COSIGN, or run bench/build-peers.sh cosign")
	return ""
}

// cosign runs the cosign CLI offline: HOME is a fresh directory (no TUF
// cache, no Docker credentials) and every proxied request goes to a closed
// port, so a command that tried to reach Rekor, Fulcio or TUF would fail
// fast instead of passing by luck. Only the in-process registry is
// reachable.
type cosign struct {
	t    *testing.T
	bin  string
	home string
	dir  string
}

func newCosign(t *testing.T) *cosign {
	return &cosign{t: t, bin: cosignBinary(t), home: t.TempDir(), dir: t.TempDir()}
}

func (c *cosign) run(args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = []string{
		"HOME=" + c.home,
		"PATH=" + os.Getenv("PATH"),
		"TUF_ROOT=" + filepath.Join(c.home, ".sigstore", "root"),
		"COSIGN_PASSWORD=" + cosignPassphrase,
		"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9",
		"NO_PROXY=127.0.0.1,localhost",
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func (c *cosign) mustRun(args ...string) string {
	c.t.Helper()
	out, stderr, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("cosign %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// TestCosignVerifiesBulwark: a key made by Bulwark, a signature and
// attestations written by Bulwark; cosign verify and verify-attestation
// accept them.
func TestCosignVerifiesBulwark(t *testing.T) {
	c := newCosign(t)
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "interop/bulwark:1")
	ref := reg.Ref("interop/bulwark:1")

	priv, pub, err := sign.GenerateKey([]byte(cosignPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(c.dir, "bulwark.key"), filepath.Join(c.dir, "bulwark.pub")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := sign.LoadKeyFile(keyFile, []byte(cosignPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	certify(t, d, s, time.Now())

	out := c.mustRun("verify", "--key", pubFile, "--insecure-ignore-tlog=true", "--allow-http-registry", ref)
	var payloads []sign.SimpleSigning
	if err := json.Unmarshal([]byte(out), &payloads); err != nil {
		t.Fatalf("cosign verify output %q: %v", out, err)
	}
	if len(payloads) != 1 || payloads[0].Critical.Image.DockerManifestDigest != d.DigestStr() || payloads[0].Optional["bulwark.dev/policy"] != "gold" {
		t.Errorf("cosign verify printed %s", out)
	}
	// Verify by digest too, with the annotation checked by cosign.
	c.mustRun("verify", "--key", pubFile, "--insecure-ignore-tlog=true", "--allow-http-registry", "-a", "bulwark.dev/policy=gold", d.String())

	for _, typ := range []string{sign.DecisionPredicateType, sbomType} {
		out := c.mustRun("verify-attestation", "--key", pubFile, "--type", typ, "--insecure-ignore-tlog=true", "--allow-http-registry", ref)
		if !strings.Contains(out, `"payloadType":"application/vnd.in-toto+json"`) {
			t.Errorf("cosign verify-attestation --type %s printed %s", typ, out)
		}
	}
	// cosign's --type filter is not vacuous: a type never attested fails.
	_, stderr, err := c.run("verify-attestation", "--key", pubFile, "--type", "https://example.com/never/v1", "--insecure-ignore-tlog=true", "--allow-http-registry", ref)
	if err == nil || !strings.Contains(stderr, "none of the attestations matched the predicate type") {
		t.Errorf("cosign verify-attestation of a type never attested: %v\n%s", err, stderr)
	}
	// And a key that did not sign fails.
	_, other, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(c.dir, "other.pub")
	if err := os.WriteFile(otherFile, other, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = c.run("verify", "--key", otherFile, "--insecure-ignore-tlog=true", "--allow-http-registry", ref)
	if err == nil || !strings.Contains(stderr, "invalid signature") {
		t.Errorf("cosign verify with another key: %v\n%s", err, stderr)
	}

	// cosign signs with the key Bulwark generated, appending to the
	// manifest Bulwark wrote; both signatures verify.
	c.mustRun("sign", "--key", keyFile, "--tlog-upload=false", "--allow-http-registry", "--yes", "-a", "by=cosign", d.String())
	v, err := sign.Verify(context.Background(), ref, s.PublicKey(), sign.Requirements{}, sign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Signatures) != 2 {
		t.Errorf("got %d verified signatures after cosign appended one, want 2", len(v.Signatures))
	}
}

// TestBulwarkVerifiesCosign: a key pair made by cosign generate-key-pair,
// a signature by cosign sign and an attestation by cosign attest; Bulwark
// reads the key and verifies both.
func TestBulwarkVerifiesCosign(t *testing.T) {
	c := newCosign(t)
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "interop/cosign:1")
	ref := reg.Ref("interop/cosign:1")

	c.mustRun("generate-key-pair")
	keyPEM, err := os.ReadFile(filepath.Join(c.dir, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(c.dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sign.LoadPrivateKey(keyPEM, []byte(cosignPassphrase))
	if err != nil {
		t.Fatalf("reading cosign.key: %v", err)
	}
	pub, err := sign.LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatalf("reading cosign.pub: %v", err)
	}
	if !key.PublicKey.Equal(pub) {
		t.Fatal("cosign.key and cosign.pub do not match as Bulwark reads them")
	}

	c.mustRun("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "--yes", ref)
	v, err := sign.Verify(context.Background(), ref, pub, sign.Requirements{}, sign.Options{})
	if err != nil {
		t.Fatalf("verifying cosign's signature: %v", err)
	}
	if len(v.Signatures) != 1 || v.Signatures[0].Payload.Critical.Image.DockerManifestDigest != d.DigestStr() {
		t.Errorf("verified %+v", v.Signatures)
	}

	predicate := filepath.Join(c.dir, "decision.json")
	if err := os.WriteFile(predicate, decision(t, time.Now().Add(-time.Minute), "sha256:p1", true), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustRun("attest", "--key", "cosign.key", "--type", sign.DecisionPredicateType, "--predicate", predicate, "--tlog-upload=false", "--allow-http-registry", "--yes", ref)
	v, err = sign.Verify(context.Background(), ref, pub, sign.Requirements{MaxDecisionAge: time.Hour, PolicyDigest: "sha256:p1"}, sign.Options{})
	if err != nil {
		t.Fatalf("verifying cosign's attestation: %v", err)
	}
	if v.Decision == nil || v.Decision.PolicyDigest != "sha256:p1" {
		t.Errorf("decision %+v", v.Decision)
	}

	// Bulwark appends its own signature to cosign's manifest, and cosign
	// still verifies its own.
	if err := sign.SignImage(context.Background(), d, newSigner(t), nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	c.mustRun("verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-http-registry", ref)
	if _, err := sign.Verify(context.Background(), ref, pub, sign.Requirements{}, sign.Options{}); err != nil {
		t.Fatal(err)
	}
}
