package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/testimage"
)

// Fake credentials in AWS's format (not AWS's documented example key, which
// the scanner knows and ignores).
const (
	fakeKeyID  = "AKIAQ3EGT7XK5VNR2WPZ"
	fakeSecret = "q8Vt3Zr7Kp2Lm9Xw4Yb6Nc1Jd5Hf0Gs8Ta2Ue7Ri"
)

func writeLayer(t *testing.T, dir, name string, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for p, body := range files {
		tw.WriteHeader(&tar.Header{Name: p, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPolicyRulesRealImage: every built-in rule passes on the real
// debootstrap image (or its Debian base) and fails on a variant of it.
func TestPolicyRulesRealImage(t *testing.T) {
	layers := realImageLayers(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	db := advisoryDB(t, nil)
	archive := func(name string, layers []string, edit func(*v1.ConfigFile)) string {
		out := filepath.Join(dir, name+".tar")
		if err := testimage.WriteDockerArchiveWith(out, "bulwark-testapp:"+name, layers, nil, edit); err != nil {
			t.Fatal(err)
		}
		return out
	}
	full := archive("full", layers, nil)
	baseOnly := archive("base", layers[:1], nil)
	rootUser := archive("root", layers, func(c *v1.ConfigFile) { c.Config.User = "" })
	// a secret written by one layer and deleted by the next
	planted := writeLayer(t, dir, "planted.tar", map[string]string{"root/.aws/credentials": "[default]\naws_access_key_id = " + fakeKeyID + "\naws_secret_access_key = " + fakeSecret + "\n"})
	deleted := writeLayer(t, dir, "deleted.tar", map[string]string{"root/.aws/.wh.credentials": ""})
	withSecret := archive("secret", append(append([]string{}, layers...), planted, deleted), nil)

	reg := registrytest.New(t)
	base, err := testimage.Image(layers[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "base/debian:12", base)
	baseDigest, _ := base.Digest()
	approvedBase := reg.Ref("base/debian@" + baseDigest.String())
	other, err := testimage.Image(layers[1:], nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "base/other:1", other)
	otherDigest, _ := other.Digest()

	const common = "name: t\nbuiltins:\n  image-age: {maxDays: 3650}\n"
	cases := []struct {
		rule, image, policy string
		db                  bool
		want                policy.Status
		evidence            string
	}{
		{policy.RuleVulnerabilities, baseOnly, common, true, policy.StatusPass, "none at or above HIGH"},
		{policy.RuleVulnerabilities, full, common, true, policy.StatusFail, "CVE-2021-44906 in minimist 1.2.0 (CRITICAL, fixed in 1.2.6)"},
		{policy.RulePackagePins, full, common + "  package-pins:\n    allow: [{name: libc6, type: deb, versions: ['>=2.36']}]\n", false, policy.StatusPass, "1 pinned packages"},
		{policy.RulePackagePins, full, common + "  package-pins:\n    allow: [{name: libc6, type: deb, versions: ['>=2.37']}]\n", false, policy.StatusFail, "is not an allowed version"},
		{policy.RulePackagePins, full, common + "  package-pins:\n    deny: [{name: tar, reason: no archivers in production}]\n", false, policy.StatusFail, "banned package tar"},
		{policy.RuleBaseImage, full, common + "  base-image:\n    approved: [" + approvedBase + "]\n", false, policy.StatusPass, "bottom 1 layers are " + approvedBase},
		{policy.RuleBaseImage, full, common + "  base-image:\n    approved: [" + reg.Ref("base/other@"+otherDigest.String()) + "]\n", false, policy.StatusFail, "match none of"},
		{policy.RuleImageAge, full, common, false, policy.StatusPass, "created 2026-01-02"},
		{policy.RuleImageAge, full, "builtins:\n  image-age: {maxDays: 30}\n", false, policy.StatusFail, "(max 30)"},
		{policy.RuleNonRoot, full, common, false, policy.StatusPass, "USER 1000"},
		{policy.RuleNonRoot, rootUser, common, false, policy.StatusFail, "USER is not set"},
		{policy.RuleLean, full, common, false, policy.StatusPass, "packages"},
		{policy.RuleLean, full, common + "  lean: {maxSizeMB: 50}\n", false, policy.StatusFail, "more than 50 MiB"},
		{policy.RuleLean, full, common + "  lean: {distroless: true}\n", false, policy.StatusFail, "shell present: /usr/bin/sh"}, // merged /usr: /bin is a link
		{policy.RuleRequiredLabels, full, common, false, policy.StatusPass, "all required labels set"},
		{policy.RuleRequiredLabels, full, common + "  required-labels: {labels: [owner]}\n", false, policy.StatusFail, "label owner is not set"},
		{policy.RuleSecrets, full, common, false, policy.StatusPass, "no secret found"},
		{policy.RuleSecrets, withSecret, common, false, policy.StatusFail, "deleted by a later layer"},
	}
	for i, c := range cases {
		t.Run(c.rule+"/"+string(c.want), func(t *testing.T) {
			pfile := filepath.Join(dir, "policy"+string(rune('a'+i))+".yaml")
			os.WriteFile(pfile, []byte(c.policy), 0o644)
			args := []string{"policy", "check", c.image, "--policy", pfile, "--cache-dir", cache, "-f", "json"}
			if c.db {
				args = append(args, "--db", db)
			} else {
				args = append(args, "--no-db")
			}
			stdout, stderr, code := run(t, args...)
			if code == ExitError {
				t.Fatalf("exit 2: %s", stderr)
			}
			var d policy.Decision
			if err := json.Unmarshal([]byte(stdout), &d); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			for _, r := range d.Rules {
				if r.Name != c.rule {
					continue
				}
				if r.Status != c.want || !strings.Contains(strings.Join(append(r.Evidence, r.Message), "\n"), c.evidence) {
					t.Errorf("%s = %s %v, want %s with %q", r.Name, r.Status, r.Evidence, c.want, c.evidence)
				}
			}
			if (code == ExitFindings) == d.Pass {
				t.Errorf("exit %d with pass=%v", code, d.Pass)
			}
			if strings.Contains(stdout+stderr, fakeSecret) || strings.Contains(stdout+stderr, fakeKeyID) {
				t.Fatal("the output contains the planted secret")
			}
		})
	}
}

// policy init writes the example once and refuses to overwrite an edited
// policy, saying so (it said "open gold.yaml: file exists").
func TestPolicyInitRefusesToOverwrite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gold.yaml")
	if _, stderr, code := run(t, "policy", "init", "-o", out); code != ExitOK {
		t.Fatalf("policy init: exit %d %s", code, stderr)
	}
	if _, err := policy.Load(out); err != nil {
		t.Fatalf("the written example does not load: %v", err)
	}
	os.WriteFile(out, []byte("# edited\n"), 0o644)
	_, stderr, code := run(t, "policy", "init", "-o", out)
	if code != ExitError || !strings.Contains(stderr, out+" exists") || !strings.Contains(stderr, "not overwritten") {
		t.Errorf("second init: exit %d, stderr %q", code, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "# edited\n" {
		t.Error("the edited policy was overwritten")
	}
}
