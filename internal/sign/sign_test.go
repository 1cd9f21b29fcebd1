package sign_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

const sbomType = "https://cyclonedx.org/bom"

func newSigner(t *testing.T) *sign.KeySigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return sign.NewKeySigner(k)
}

// pushRandom pushes a random image under repoTag and returns its digest
// reference.
func pushRandom(t *testing.T, reg *registrytest.Registry, repoTag string) name.Digest {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, repoTag, img)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}

func decision(t *testing.T, at time.Time, policyDigest string, pass bool) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"time": at.UTC().Format(time.RFC3339), "policyDigest": policyDigest, "pass": pass, "rules": []any{}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// certify signs d and attests an SBOM and a passing decision, as
// `bulwark certify` would.
func certify(t *testing.T, d name.Digest, s sign.Signer, at time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := sign.SignImage(ctx, d, s, map[string]string{"bulwark.dev/policy": "gold"}, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := sign.AttestImage(ctx, d, s, sbomType, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`), sign.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := sign.AttestImage(ctx, d, s, sign.DecisionPredicateType, decision(t, at, "sha256:p1", true), sign.Options{}); err != nil {
		t.Fatal(err)
	}
}

func wantFailure(t *testing.T, err, sentinel error) {
	t.Helper()
	var ve *sign.VerificationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v (%T), want a *VerificationError", err, err)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want %v", err, sentinel)
	}
}

func TestSignAttestVerify(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "team/app:1")
	s := newSigner(t)
	now := time.Now()
	certify(t, d, s, now.Add(-time.Hour))

	want := sign.Requirements{Attestations: []string{sbomType}, MaxDecisionAge: 24 * time.Hour, PolicyDigest: "sha256:p1", Now: now}
	v, err := sign.Verify(context.Background(), reg.Ref("team/app:1"), s.PublicKey(), want, sign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Digest != d.DigestStr() || v.Repository != d.Context().Name() {
		t.Errorf("verified %s in %s, want %s in %s", v.Digest, v.Repository, d.DigestStr(), d.Context().Name())
	}
	if len(v.Signatures) != 1 {
		t.Fatalf("got %d signatures, want 1", len(v.Signatures))
	}
	p := v.Signatures[0].Payload
	if p.Critical.Image.DockerManifestDigest != d.DigestStr() || p.Critical.Identity.DockerReference != d.Context().Name() || p.Optional["bulwark.dev/policy"] != "gold" {
		t.Errorf("payload %+v", p)
	}
	if v.Signatures[0].KeyID != sign.KeyID(s.PublicKey()) {
		t.Errorf("key id %s, want %s", v.Signatures[0].KeyID, sign.KeyID(s.PublicKey()))
	}
	if len(v.Attestations) != 2 {
		t.Fatalf("got %d attestations, want 2", len(v.Attestations))
	}
	if v.Decision == nil || v.Decision.PolicyDigest != "sha256:p1" || now.Sub(v.Decision.Time) > time.Hour+time.Second {
		t.Errorf("decision %+v", v.Decision)
	}

	// Verifying by digest works as well, and the stored manifests are
	// OCI images whose config lists each payload's sha256 as its diff_id,
	// as cosign writes them. (validate.Image does not apply: it skips
	// layers of non-layer media types but not their diff_ids.)
	if _, err := sign.Verify(context.Background(), d.String(), s.PublicKey(), want, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, tagOf := range []func(name.Digest) (name.Tag, error){sign.SignatureTag, sign.AttestationTag} {
		tag, err := tagOf(d)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(tag)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.MediaType != types.OCIConfigJSON || len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			t.Fatalf("%s: config %s with %d diff_ids for %d layers", tag, m.Config.MediaType, len(cfg.RootFS.DiffIDs), len(m.Layers))
		}
		for i, l := range m.Layers {
			if cfg.RootFS.DiffIDs[i] != l.Digest {
				t.Errorf("%s: diff_id %d is %s, layer digest %s", tag, i, cfg.RootFS.DiffIDs[i], l.Digest)
			}
		}
		mt, _ := img.MediaType()
		if mt != types.OCIManifestSchema1 {
			t.Errorf("%s: media type %s", tag, mt)
		}
	}
}

func TestStoredFormat(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "fmt/app:1")
	s := newSigner(t)
	certify(t, d, s, time.Now())
	h, _ := v1.NewHash(d.DigestStr())

	sigTag, _ := sign.SignatureTag(d)
	if want := "sha256-" + h.Hex + ".sig"; sigTag.TagStr() != want {
		t.Fatalf("signature tag %s, want %s", sigTag.TagStr(), want)
	}
	layers := storedLayers(t, sigTag)
	if len(layers) != 1 || layers[0].mt != sign.SimpleSigningMediaType {
		t.Fatalf("signature layers %+v", layers)
	}
	wantPayload := fmt.Sprintf(`{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":{"bulwark.dev/policy":"gold"}}`, d.Context().Name(), d.DigestStr())
	if string(layers[0].payload) != wantPayload {
		t.Errorf("payload\n%s\nwant\n%s", layers[0].payload, wantPayload)
	}
	if _, err := base64.StdEncoding.DecodeString(layers[0].ann[sign.SignatureAnnotation]); err != nil || len(layers[0].ann) != 1 {
		t.Errorf("signature annotations %v", layers[0].ann)
	}

	attTag, _ := sign.AttestationTag(d)
	atts := storedLayers(t, attTag)
	if len(atts) != 2 {
		t.Fatalf("got %d attestation layers, want 2", len(atts))
	}
	a := atts[0]
	if a.mt != sign.DSSEMediaType || a.ann[sign.PredicateTypeAnnotation] != sbomType || a.ann[sign.SignatureAnnotation] != "" {
		t.Errorf("attestation layer %s %v", a.mt, a.ann)
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(a.payload, &env); err != nil {
		t.Fatal(err)
	}
	if env.PayloadType != sign.InTotoPayloadType || len(env.Signatures) != 1 {
		t.Fatalf("envelope %s", a.payload)
	}
	body, _ := base64.StdEncoding.DecodeString(env.Payload)
	wantStmt := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":%q,"subject":[{"name":%q,"digest":{"sha256":%q}}],"predicate":{"bomFormat":"CycloneDX","specVersion":"1.6"}}`, sbomType, d.Context().Name(), h.Hex)
	if string(body) != wantStmt {
		t.Errorf("statement\n%s\nwant\n%s", body, wantStmt)
	}
}

type layer struct {
	mt      types.MediaType
	ann     map[string]string
	payload []byte
}

func storedLayers(t *testing.T, tag name.Tag) []layer {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []layer
	for _, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layer{mt: d.MediaType, ann: d.Annotations, payload: b})
	}
	return out
}

// rewrite replaces the manifest at tag with one whose layers are edit's
// result, as someone with push access to the repository could.
func rewrite(t *testing.T, tag name.Tag, edit func([]layer) []layer) {
	t.Helper()
	layers := edit(storedLayers(t, tag))
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(l.payload, l.mt), Annotations: l.ann})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

func TestAppendsAndDeduplicates(t *testing.T) {
	reg := registrytest.New(t)
	d := pushRandom(t, reg, "multi/app:1")
	a, b := newSigner(t), newSigner(t)
	ctx := context.Background()
	for _, s := range []sign.Signer{a, b, a} {
		if err := sign.SignImage(ctx, d, s, nil, sign.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	tag, _ := sign.SignatureTag(d)
	if n := len(storedLayers(t, tag)); n != 2 {
		t.Errorf("got %d signature layers, want 2 (a's second signature is a duplicate)", n)
	}
	for _, s := range []sign.Signer{a, b} {
		if err := sign.AttestImage(ctx, d, s, sbomType, []byte(`{}`), sign.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	attTag, _ := sign.AttestationTag(d)
	if n := len(storedLayers(t, attTag)); n != 2 {
		t.Errorf("got %d attestation layers, want 2", n)
	}
	for _, s := range []sign.Signer{a, b} {
		if _, err := sign.Verify(ctx, d.String(), s.PublicKey(), sign.Requirements{Attestations: []string{sbomType}}, sign.Options{}); err != nil {
			t.Error(err)
		}
	}
}
func TestSignUnknownDigest(t *testing.T) {
	reg := registrytest.New(t)
	pushRandom(t, reg, "unknown/app:1")
	ref, err := name.NewDigest(reg.Host + "/unknown/app@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.SignImage(context.Background(), ref, newSigner(t), nil, sign.Options{}); err == nil {
		t.Error("signed a digest the registry does not have")
	}
}
