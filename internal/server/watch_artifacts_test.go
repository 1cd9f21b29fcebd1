package server

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/certify"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// sbomReferrer is a CycloneDX SBOM pushed as an OCI artifact about subject
// (config media type and subject, as `oras attach` writes it).
func sbomReferrer(t *testing.T, subject v1.Image) v1.Image {
	t.Helper()
	d, err := subject.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, _ := subject.Size()
	mt, _ := subject.MediaType()
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: static.NewLayer([]byte(`{"bomFormat":"CycloneDX"}`), "application/vnd.cyclonedx+json")})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), "application/vnd.cyclonedx+json")
	return mutate.Subject(img, v1.Descriptor{MediaType: mt, Size: size, Digest: d}).(v1.Image)
}

// The server certifies an image it found by polling, which pushes the
// signature and attestations next to it (sha256-<hex>.sig, .att), and an
// SBOM is attached as an OCI referrer: the next polls queue no scan for
// any of them (each used to fail "invalid tar header" up to the attempt
// limit), and GET /api/v1/images/{digest}/signatures shows the server's key
// as the signer and the three attestation types.
func TestWatchAttachesSignaturesNotScans(t *testing.T) {
	reg := registrytest.New(t)
	good := lodashImage(t, "4.17.21", time.Now().Add(-24*time.Hour))
	reg.Push(t, "shop/web:1", good)
	digest := digestOf(t, good)

	pass := []byte("test passphrase")
	priv, pub, err := sign.GenerateKey(pass)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "bulwark.key")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	pubKey, err := sign.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	feed := t.TempDir()
	rec, err := os.ReadFile(filepath.Join("..", "match", "testdata", "osv", "GHSA-35jh-r3h4-6jhm.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(feed, "GHSA-35jh-r3h4-6jhm.json"), rec, 0o644)

	dir := t.TempDir()
	admin := bootstrap(t, dir)
	c, stop := startServerWith(t, dir, func(cfg *Config) {
		cfg.WatchInterval = 200 * time.Millisecond
		cfg.Policy = vulnerabilitiesOnly(t)
		cfg.SigningKey, cfg.SigningPassphrase = keyFile, pass
		cfg.AdvisorySources = []string{"npm=" + feed}
	})
	c.json("POST", "/api/v1/registries", admin.Token, map[string]any{
		"name": "local", "url": "http://" + reg.Host, "repositories": []string{"shop/web"},
	}, http.StatusCreated, nil)
	waitImage(c, admin.Token, digest, 30*time.Second, func(d imageDetail) bool {
		return d.Certification != nil && d.Certification.Status == store.Certified
	})
	reg.Push(t, "shop/web:sbom", sbomReferrer(t, good))

	// The signature and attestations are attached within a few polls.
	var got api.Signatures
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.json("GET", "/api/v1/images/"+digest+"/signatures", admin.Token, nil, http.StatusOK, &got)
		kinds := map[string]int{}
		for _, a := range got.Attachments {
			kinds[a.Kind]++
		}
		if kinds[sign.KindSignature] > 0 && kinds[sign.KindAttestation] == 3 && kinds[sign.KindSBOM] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("signatures after 20 s: %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if want := []string{sign.KeyID(pubKey)}; !slices.Equal(got.SignedBy, want) {
		t.Errorf("signedBy = %v, want %v", got.SignedBy, want)
	}
	want := slices.Clone(certify.Predicates)
	slices.Sort(want)
	if !slices.Equal(got.PredicateTypes, want) {
		t.Errorf("predicateTypes = %v, want %v", got.PredicateTypes, want)
	}
	for _, a := range got.Attachments {
		if (a.Kind == sign.KindSignature || a.Kind == sign.KindAttestation) && !a.Verified {
			t.Errorf("not verified: %+v", a)
		}
	}
	time.Sleep(500 * time.Millisecond) // more polls over the attached tags
	stop()

	jobs := scanJobs(t, dir)
	for ref := range jobs {
		if !strings.HasSuffix(ref, "@"+digest) {
			t.Errorf("a scan was queued for %s, which is not an image: %v", ref, jobs)
		}
	}
	if len(jobs) != 1 {
		t.Errorf("scan jobs: %v; want the image's only", jobs)
	}
	// The signature tags are not the image's tags.
	st, err := OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tags, _ := st.Tags(t.Context(), reg.Host+"/shop/web")
	if len(tags) != 1 || tags[0].Tag != "1" {
		t.Errorf("tags of shop/web: %+v; want :1 only", tags)
	}
}

// ArtifactTag knows cosign's tag scheme and the referrers fallback tag;
// ArtifactKind classifies by artifactType, config and layer media types.
func TestArtifactRecognition(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for tag, want := range map[string]string{
		"sha256-" + hex + ".sig": sign.KindSignature, "sha256-" + hex + ".att": sign.KindAttestation,
		"sha256-" + hex + ".sbom": sign.KindSBOM, "sha256-" + hex: sign.KindArtifact,
		"sha256-" + hex + ".txt": "", "sha256-abc.sig": "", "latest": "", "sha512-" + hex + ".sig": "",
	} {
		subject, kind, ok := sign.ArtifactTag(tag)
		if kind != want || ok != (want != "") || ok && subject != "sha256:"+hex {
			t.Errorf("ArtifactTag(%q) = %q %q %v, want kind %q", tag, subject, kind, ok, want)
		}
	}
	image := v1.Manifest{Config: v1.Descriptor{MediaType: types.OCIConfigJSON}, Layers: []v1.Descriptor{{MediaType: types.OCILayer}}}
	for _, tc := range []struct {
		name string
		m    v1.Manifest
		want string
	}{
		{"image", image, ""},
		{"artifactType", v1.Manifest{ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", Config: v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json"}}, sign.KindSignature},
		{"in-toto artifactType", v1.Manifest{ArtifactType: "application/vnd.in-toto+json"}, sign.KindAttestation},
		{"spdx config", v1.Manifest{Config: v1.Descriptor{MediaType: "application/spdx+json"}}, sign.KindSBOM},
		{"cosign layers", v1.Manifest{Config: v1.Descriptor{MediaType: types.OCIConfigJSON}, Layers: []v1.Descriptor{{MediaType: sign.SimpleSigningMediaType}}}, sign.KindSignature},
		{"other referrer", v1.Manifest{Config: v1.Descriptor{MediaType: "application/vnd.example.report"}, Subject: &v1.Descriptor{}}, sign.KindArtifact},
		{"image with a subject", v1.Manifest{Config: v1.Descriptor{MediaType: types.OCIConfigJSON}, Layers: image.Layers, Subject: &v1.Descriptor{}}, ""},
	} {
		kind, ok := sign.ArtifactKind(&tc.m)
		if kind != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: ArtifactKind = %q %v, want %q", tc.name, kind, ok, tc.want)
		}
	}
}
