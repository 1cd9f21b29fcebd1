package cli

import (
	"context"
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

const attestData = "../attest/testdata/"

// TestAttestVerify runs `bulwark attest verify` on the real SEV-SNP
// report and TDX quote and checks each exit code: 0 verified, 1 refused
// (with the reason), 2 bad input.
func TestAttestVerify(t *testing.T) {
	dir := t.TempDir()
	debugOK := filepath.Join(dir, "debug-ok")
	os.MkdirAll(debugOK, 0o755)
	os.WriteFile(filepath.Join(debugOK, "policy.yaml"), []byte("allowDebug: true\n"), 0o644)
	snp := []string{"attest", "verify", attestData + "snp/report.bin", "--kind", "sev-snp", "--vcek", attestData + "snp/vcek.der", "--at", "2026-01-15T00:00:00Z"}

	out, _, code := run(t, snp...)
	if code != ExitFindings || !strings.Contains(out, "REFUSED (debug)") {
		t.Fatalf("debug guest: exit %d\n%s", code, out)
	}
	out, _, code = run(t, append(snp, "--collateral", debugOK)...)
	if code != ExitOK || !strings.Contains(out, "VERIFIED") || !strings.Contains(out, "measurement") {
		t.Fatalf("debug allowed: exit %d\n%s", code, out)
	}
	var res attestOutput
	out, _, code = run(t, append(snp, "--collateral", debugOK, "-f", "json")...)
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.Verified || res.Result.TCB.SNP == nil {
		t.Fatalf("json: exit %d %v\n%s", code, err, out)
	}
	out, _, code = run(t, append(snp, "--collateral", debugOK, "--nonce", "00ff")...)
	if code != ExitFindings || !strings.Contains(out, "REFUSED (nonce)") {
		t.Fatalf("nonce: exit %d\n%s", code, out)
	}

	// Reference values written by --print, then required.
	refFile := filepath.Join(dir, "ref.json")
	out, stderr, code := run(t, "attest", "reference", "--kind", "sev-snp", "--measurement", res.Result.Measurement.String(), "--print")
	if code != 0 {
		t.Fatalf("reference --print: %s", stderr)
	}
	os.WriteFile(refFile, []byte(out), 0o644)
	if _, _, code = run(t, append(snp, "--collateral", debugOK, "--reference", refFile)...); code != ExitOK {
		t.Fatalf("matching reference: exit %d", code)
	}
	other := "00" + res.Result.Measurement.String()[2:]
	out, _, _ = run(t, "attest", "reference", "--kind", "sev-snp", "--measurement", other, "--print")
	os.WriteFile(refFile, []byte(out), 0o644)
	if out, _, code = run(t, append(snp, "--collateral", debugOK, "--reference", refFile)...); code != ExitFindings || !strings.Contains(out, "measurement") {
		t.Fatalf("other reference: exit %d\n%s", code, out)
	}

	// TDX: at the collateral's own date the platform matches no TCB level.
	tdxDir := filepath.Join(dir, "tdx-col")
	os.MkdirAll(filepath.Join(tdxDir, "tdx"), 0o755)
	for _, f := range []string{"tcbinfo.json", "tcbinfo-chain.pem", "qeidentity.json", "qeidentity-chain.pem", "pckcrl.der", "pckcrl-chain.pem", "rootcrl.der"} {
		b, _ := os.ReadFile(attestData + "tdx/" + f)
		os.WriteFile(filepath.Join(tdxDir, "tdx", f), b, 0o644)
	}
	tdx := []string{"attest", "verify", attestData + "tdx/quote.dat", "--kind", "tdx"}
	if out, _, code = run(t, append(tdx, "--collateral", tdxDir, "--at", "2023-07-01T01:00:00Z")...); code != ExitFindings || !strings.Contains(out, "tcb-out-of-date") {
		t.Fatalf("tdx at its date: exit %d\n%s", code, out)
	}
	if out, _, code = run(t, append(tdx, "--collateral", tdxDir)...); code != ExitFindings || !strings.Contains(out, "collateral-expired") {
		t.Fatalf("tdx today: exit %d\n%s", code, out)
	}
	if out, _, code = run(t, append(tdx, "--allow-missing-collateral")...); code != ExitOK || !strings.Contains(out, "rtmr3") {
		t.Fatalf("tdx without collateral: exit %d\n%s", code, out)
	}

	// Bad input is exit 2.
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not a quote"), 0o644)
	for _, args := range [][]string{
		{"attest", "verify", junk},
		{"attest", "verify", junk, "--kind", "sgx"},
		{"attest", "verify", junk, "--kind", "nope"},
		{"attest", "verify", filepath.Join(dir, "missing"), "--kind", "tdx"},
		append(snp, "--nonce", "zz"),
		append(snp, "--collateral", filepath.Join(dir, "missing")),
		{"attest", "reference", "--kind", "sgx", "--print"},
	} {
		if _, stderr, code := run(t, args...); code != ExitError {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}

// TestAttestReference signs reference values into the image's
// attestations on an in-process registry and reads them back verified.
func TestAttestReference(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BULWARK_PASSWORD", "pw")
	reg := registrytest.New(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "team/enclave:1", img)
	d, _ := img.Digest()
	ref := reg.Ref("team/enclave@" + d.String())
	prefix := filepath.Join(dir, "k")
	if _, stderr, code := run(t, "key", "generate", "--output-key-prefix", prefix); code != 0 {
		t.Fatal(stderr)
	}
	pol := filepath.Join(dir, "pol.yaml")
	os.WriteFile(pol, []byte("kinds: [sgx]\nminSvn: 3\n"), 0o644)
	out, stderr, code := run(t, "attest", "reference", ref, "--key", prefix+".key", "--kind", "sgx",
		"--measurement", strings.Repeat("ab", 32), "--signer", strings.Repeat("cd", 32), "--product-id", "7", "--policy", pol)
	if code != 0 || !strings.Contains(out, "recorded 1 reference value set(s) ([sgx])") {
		t.Fatalf("attest reference: exit %d\n%s\n%s", code, out, stderr)
	}
	// The server believes it only with an image signature by the same key.
	pub, err := loadPublicKeyFile(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.ReadReference(context.Background(), ref, []crypto.PublicKey{pub}, sign.Options{}); err == nil {
		t.Fatal("reference values believed without an image signature")
	}
	s, err := sign.LoadKeyFile(prefix+".key", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	dref, _ := name.NewDigest(ref)
	if err := sign.SignImage(context.Background(), dref, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	pred, err := attest.ReadReference(context.Background(), ref, []crypto.PublicKey{pub}, sign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := pred.References[0]
	if r.Kind != attest.SGX || *r.ProductID != 7 || pred.Policy == nil || pred.Policy.MinSVN != 3 {
		t.Fatalf("read back %+v (policy %+v)", pred, pred.Policy)
	}
	// Another key's view: nothing.
	other := filepath.Join(dir, "o")
	run(t, "key", "generate", "--output-key-prefix", other)
	opub, _ := loadPublicKeyFile(other + ".pub")
	if _, err := attest.ReadReference(context.Background(), ref, []crypto.PublicKey{opub}, sign.Options{}); err == nil {
		t.Fatal("reference values believed under another key")
	}
}
