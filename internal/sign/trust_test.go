package sign_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// writePub writes s's public key to dir/name.
func writePub(t *testing.T, dir, name string, s sign.Signer) string {
	t.Helper()
	b, err := sign.MarshalPublicKey(s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePolicy(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrustPolicyErrors(t *testing.T) {
	dir := t.TempDir()
	writePub(t, dir, "a.pub", newSigner(t))
	for _, tc := range []struct{ body, want string }{
		{"", "empty"},
		{"[]", "no entries"},
		{"repositories: [x]\n", "line 1: cannot unmarshal !!map into a list of entries"},
		{"- [x]\n", "line 1: cannot unmarshal !!seq into an entry (a mapping)"},
		{"- repositories: [x]\n  keys: [a.pub]\n  attestation: [t]\n", "line 3: field attestation not found"},
		{"- repositories: [x]\n  keys: [a.pub]\n- repositories: [y]\n", `line 3: entry 2: "keys" is empty`},
		{"- repositories: [x]\n  keys: [a.pub]\n- repositories: [y]\n  keys:\n    - a.pub\n    - missing.pub\n", "line 6: reading key"},
		{"- repositories: [x]\n  keys: [trust.yaml]\n", "line 2: "},
		{"- repositories: ['a/[b']\n  keys: [a.pub]\n", "line 1: repository pattern \"a/[b\": syntax error in pattern"},
		{"- repositories: ['a/**/b']\n  keys: [a.pub]\n", `"**" is allowed only`},
		{"- repositories: [{a: b}]\n  keys: [a.pub]\n", "line 1: repositories: want a non-empty string"},
		{"- repositories: [x]\n  keys: [a.pub\n", "did not find expected"},
	} {
		_, err := sign.LoadTrustPolicy(writePolicy(t, dir, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("policy %q: got %v, want an error containing %q", tc.body, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "rawEntry") {
			t.Errorf("policy %q: error names a Go type: %v", tc.body, err)
		}
	}
}

func TestTrustPolicyFor(t *testing.T) {
	dir := t.TempDir()
	writePub(t, dir, "a.pub", newSigner(t))
	p, err := sign.LoadTrustPolicy(writePolicy(t, dir, `
- repositories: ["registry.example.com/prod/*"]
  keys: [a.pub]
- repositories: ["registry.example.com/team/**", "docker.io/library/alpine"]
  keys: [a.pub]
  attestations: [https://bulwark.dev/attestations/decision/v1]
- repositories: ["**"]
  keys: [a.pub]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 3 || p.Entries[1].Line != 4 || len(p.Entries[1].Keys) != 1 {
		t.Fatalf("entries %+v", p.Entries)
	}
	for repo, want := range map[string][]int{
		"registry.example.com/prod/app":       {2, 7},
		"registry.example.com/prod/app/x":     {7},
		"registry.example.com/team":           {7},
		"registry.example.com/team/app":       {4, 7},
		"registry.example.com/team/a/b/c":     {4, 7},
		"index.docker.io/library/alpine":      {4, 7},
		"other.example.com/prod/registry.app": {7},
	} {
		var got []int
		for _, e := range p.For(repo) {
			got = append(got, e.Line)
		}
		if !equalInts(got, want) {
			t.Errorf("For(%s) = entries at lines %v, want %v", repo, got, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTrustPolicyVerify(t *testing.T) {
	reg := registrytest.New(t)
	release, team, stranger := newSigner(t), newSigner(t), newSigner(t)
	dir := t.TempDir()
	writePub(t, dir, "release.pub", release)
	writePub(t, dir, "team.pub", team)
	p, err := sign.LoadTrustPolicy(writePolicy(t, dir, `
- repositories: ["`+reg.Host+`/prod/**"]
  keys: [release.pub, team.pub]
  attestations: ["`+sign.DecisionPredicateType+`"]
- repositories: ["`+reg.Host+`/prod/payments"]
  keys: [release.pub]
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	web := pushRandom(t, reg, "prod/web:1")
	certify(t, web, team, time.Now())
	v, err := p.Verify(ctx, reg.Ref("prod/web:1"), sign.Requirements{}, sign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Signatures) != 1 || v.Signatures[0].KeyID != sign.KeyID(team.PublicKey()) {
		t.Errorf("signatures %+v", v.Signatures)
	}

	// payments matches both entries: the team key satisfies the first but
	// the second wants the release key.
	pay := pushRandom(t, reg, "prod/payments:1")
	certify(t, pay, team, time.Now())
	_, err = p.Verify(ctx, reg.Ref("prod/payments:1"), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)
	if !strings.Contains(err.Error(), "line 5") {
		t.Errorf("error does not name the entry: %v", err)
	}
	if err := sign.SignImage(ctx, pay, release, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(ctx, reg.Ref("prod/payments:1"), sign.Requirements{}, sign.Options{}); err != nil {
		t.Fatal(err)
	}

	// The entry's attestations are required.
	bare := pushRandom(t, reg, "prod/bare:1")
	if err := sign.SignImage(ctx, bare, release, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = p.Verify(ctx, reg.Ref("prod/bare:1"), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrMissingAttestation)

	// A stranger's key is not trusted anywhere; other repositories have
	// no entry.
	odd := pushRandom(t, reg, "prod/odd:1")
	certify(t, odd, stranger, time.Now())
	_, err = p.Verify(ctx, reg.Ref("prod/odd:1"), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)
	pushRandom(t, reg, "dev/app:1")
	_, err = p.Verify(ctx, reg.Ref("dev/app:1"), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrUntrusted)
}
