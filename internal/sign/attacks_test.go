package sign_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

func TestMovedTag(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "moved/app:1")
	s := newSigner(t)
	certify(t, d, s, time.Now())
	ctx := context.Background()
	if _, err := sign.Verify(ctx, reg.Ref("moved/app:1"), s.PublicKey(), sign.Requirements{}, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	other := pushRandom(t, reg, "moved/app:1")
	_, err := sign.Verify(ctx, reg.Ref("moved/app:1"), s.PublicKey(), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrNoSignature)
	var ve *sign.VerificationError
	errors.As(err, &ve)
	if ve.Digest != other.DigestStr() {
		t.Errorf("error names digest %s, want the new %s", ve.Digest, other.DigestStr())
	}
	// The old digest still verifies.
	if _, err := sign.Verify(ctx, d.String(), s.PublicKey(), sign.Requirements{}, sign.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestReplayedSignature(t *testing.T) {
	reg := registrytest.New(t)
	signed := pushRandom(t, reg, "replay/app:1")
	evil := pushRandom(t, reg, "replay/app:2")
	s := newSigner(t)
	certify(t, signed, s, time.Now())
	ctx := context.Background()

	// Copy the signature and attestation manifests of the signed image to
	// the tags of the other one.
	for _, tagOf := range []func(name.Digest) (name.Tag, error){sign.SignatureTag, sign.AttestationTag} {
		from, _ := tagOf(signed)
		to, _ := tagOf(evil)
		img, err := remote.Image(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(to, img); err != nil {
			t.Fatal(err)
		}
	}
	_, err := sign.Verify(ctx, reg.Ref("replay/app:2"), s.PublicKey(), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrDigestMismatch)

	// The same for attestations, with a genuine signature of evil.
	if err := sign.SignImage(ctx, evil, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(ctx, reg.Ref("replay/app:2"), s.PublicKey(), sign.Requirements{Attestations: []string{sbomType}}, sign.Options{})
	wantFailure(t, err, sign.ErrDigestMismatch)
}

func TestOtherRepository(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "origin/app:1")
	s := newSigner(t)
	certify(t, d, s, time.Now())

	// Copy the image and its signature manifest to another repository.
	mirror, _ := name.NewRepository(reg.Host + "/mirror/app")
	img, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mirror.Tag("1"), img); err != nil {
		t.Fatal(err)
	}
	from, _ := sign.SignatureTag(d)
	to, _ := sign.SignatureTag(mirror.Digest(d.DigestStr()))
	sigs, err := remote.Image(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(to, sigs); err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(context.Background(), mirror.Tag("1").String(), s.PublicKey(), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrRepositoryMismatch)
}

func TestTamperedPayload(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "tamper/app:1")
	s := newSigner(t)
	certify(t, d, s, time.Now())
	ctx := context.Background()

	sigTag, _ := sign.SignatureTag(d)
	rewrite(t, sigTag, func(ls []layer) []layer {
		// Flip one byte of the "type" value: the JSON stays valid.
		i := strings.Index(string(ls[0].payload), "cosign container")
		ls[0].payload[i] ^= 0x20
		return ls
	})
	_, err := sign.Verify(ctx, reg.Ref("tamper/app:1"), s.PublicKey(), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)

	// A tampered attestation: re-sign the image, flip a byte inside the
	// statement of the SBOM attestation.
	if err := sign.SignImage(ctx, d, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	attTag, _ := sign.AttestationTag(d)
	rewrite(t, attTag, func(ls []layer) []layer {
		var env map[string]any
		if err := json.Unmarshal(ls[0].payload, &env); err != nil {
			t.Fatal(err)
		}
		body, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
		i := strings.Index(string(body), "CycloneDX")
		body[i] ^= 0x01
		env["payload"] = base64.StdEncoding.EncodeToString(body)
		ls[0].payload, _ = json.Marshal(env)
		return ls
	})
	_, err = sign.Verify(ctx, reg.Ref("tamper/app:1"), s.PublicKey(), sign.Requirements{Attestations: []string{sbomType}}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)
	// The decision attestation was left alone and still verifies.
	if _, err := sign.Verify(ctx, reg.Ref("tamper/app:1"), s.PublicKey(), sign.Requirements{MaxDecisionAge: time.Hour}, sign.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestMissingAttestation(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "missing/app:1")
	s := newSigner(t)
	ctx := context.Background()
	if err := sign.SignImage(ctx, d, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	// No .att manifest at all.
	_, err := sign.Verify(ctx, d.String(), s.PublicKey(), sign.Requirements{Attestations: []string{sbomType}}, sign.Options{})
	wantFailure(t, err, sign.ErrMissingAttestation)
	// A .att manifest without the type asked for.
	if err := sign.AttestImage(ctx, d, s, "https://example.com/other/v1", []byte(`{"a":1}`), sign.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(ctx, d.String(), s.PublicKey(), sign.Requirements{Attestations: []string{sbomType}}, sign.Options{})
	wantFailure(t, err, sign.ErrMissingAttestation)
	_, err = sign.Verify(ctx, d.String(), s.PublicKey(), sign.Requirements{MaxDecisionAge: time.Hour}, sign.Options{})
	wantFailure(t, err, sign.ErrMissingAttestation)
}

func TestWrongKey(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "wrongkey/app:1")
	s, other := newSigner(t), newSigner(t)
	certify(t, d, s, time.Now())
	_, err := sign.Verify(context.Background(), d.String(), other.PublicKey(), sign.Requirements{}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)

	// Signed by the right key, attested by another one.
	d2 := pushRandom(t, reg, "wrongkey/app:2")
	if err := sign.SignImage(context.Background(), d2, other, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := sign.AttestImage(context.Background(), d2, s, sbomType, []byte(`{}`), sign.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(context.Background(), d2.String(), other.PublicKey(), sign.Requirements{Attestations: []string{sbomType}}, sign.Options{})
	wantFailure(t, err, sign.ErrBadSignature)
}

func TestDecisionChecks(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "decision/app:1")
	s := newSigner(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := sign.SignImage(ctx, d, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{
		decision(t, now.Add(-72*time.Hour), "sha256:old", true),
		decision(t, now.Add(-2*time.Hour), "sha256:p1", true),
		decision(t, now.Add(-1*time.Hour), "sha256:p2", false),
	} {
		if err := sign.AttestImage(ctx, d, s, sign.DecisionPredicateType, p, sign.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(w sign.Requirements) (*sign.Verified, error) {
		w.Now = now
		return sign.Verify(ctx, d.String(), s.PublicKey(), w, sign.Options{})
	}
	v, err := verify(sign.Requirements{MaxDecisionAge: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if v.Decision.PolicyDigest != "sha256:p1" {
		t.Errorf("picked decision %+v, want the passing one under sha256:p1", v.Decision)
	}
	if v, err = verify(sign.Requirements{PolicyDigest: "sha256:old"}); err != nil || !v.Decision.Time.Equal(now.Add(-72*time.Hour)) {
		t.Errorf("policy sha256:old: %v %+v", err, v)
	}
	_, err = verify(sign.Requirements{MaxDecisionAge: 30 * time.Minute})
	wantFailure(t, err, sign.ErrDecisionFailed) // the newest one failed its gates
	_, err = verify(sign.Requirements{PolicyDigest: "sha256:old", MaxDecisionAge: 24 * time.Hour})
	wantFailure(t, err, sign.ErrStaleDecision)
	_, err = verify(sign.Requirements{PolicyDigest: "sha256:nope"})
	wantFailure(t, err, sign.ErrPolicyMismatch)

	d2 := pushRandom(t, reg, "decision/app:2")
	if err := sign.SignImage(ctx, d2, s, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := sign.AttestImage(ctx, d2, s, sign.DecisionPredicateType, decision(t, now.Add(-25*time.Hour), "sha256:p1", true), sign.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(ctx, d2.String(), s.PublicKey(), sign.Requirements{MaxDecisionAge: 24 * time.Hour, Now: now}, sign.Options{})
	wantFailure(t, err, sign.ErrStaleDecision)
	_, err = sign.Verify(ctx, d2.String(), s.PublicKey(), sign.Requirements{MaxDecisionAge: 24 * time.Hour, Now: now.Add(-30 * time.Hour)}, sign.Options{})
	wantFailure(t, err, sign.ErrStaleDecision) // dated in the future
}

func TestRegistryErrorIsNotAVerificationFailure(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "down/app:1")
	s := newSigner(t)
	certify(t, d, s, time.Now())
	reg.Server.Close()
	_, err := sign.Verify(context.Background(), d.String(), s.PublicKey(), sign.Requirements{}, sign.Options{})
	if err == nil {
		t.Fatal("verified against a closed registry")
	}
	var ve *sign.VerificationError
	if errors.As(err, &ve) {
		t.Fatalf("a network error was reported as a verification failure: %v", err)
	}
	for _, s := range []error{sign.ErrNoSignature, sign.ErrBadSignature, sign.ErrDigestMismatch, sign.ErrMissingAttestation} {
		if errors.Is(err, s) {
			t.Errorf("network error matches %v", s)
		}
	}
	if err := sign.SignImage(context.Background(), d, s, nil, sign.Options{}); err == nil {
		t.Error("signed against a closed registry")
	}
}
