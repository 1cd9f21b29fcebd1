package sign

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Kinds of what is attached to an image in a registry: not images, never
// scanned, shown with the image they are about.
const (
	KindSignature   = "signature"
	KindAttestation = "attestation"
	KindSBOM        = "sbom"
	// KindArtifact is any other OCI artifact with a subject.
	KindArtifact = "artifact"
)

// CertificateAnnotation holds the PEM certificate of a keyless (Fulcio)
// cosign signature layer.
const CertificateAnnotation = "dev.sigstore.cosign/certificate"

// artifactTag is cosign's tag scheme (sha256-<hex>.sig, .att, .sbom) and
// the OCI 1.1 referrers fallback tag (sha256-<hex>, an index of referrers).
var artifactTag = regexp.MustCompile(`^sha256-([0-9a-f]{64})(?:\.(sig|att|sbom))?$`)

// ArtifactTag reports whether tag names what is attached to an image
// rather than an image: it returns the digest of the image it is about
// and the kind (KindArtifact for a referrers index).
func ArtifactTag(tag string) (subject, kind string, ok bool) {
	m := artifactTag.FindStringSubmatch(tag)
	if m == nil {
		return "", "", false
	}
	kind = map[string]string{"sig": KindSignature, "att": KindAttestation, "sbom": KindSBOM, "": KindArtifact}[m[2]]
	return "sha256:" + m[1], kind, true
}

// kindOfType maps artifact, config and layer media types of signatures,
// attestations and SBOMs (cosign, sigstore bundles, Notary, in-toto,
// CycloneDX, SPDX, Syft) to a kind.
var kindOfType = map[string]string{
	SimpleSigningMediaType:                             KindSignature,
	"application/vnd.dev.cosign.artifact.sig.v1+json":  KindSignature,
	"application/vnd.dev.sigstore.bundle.v0.3+json":    KindSignature,
	"application/vnd.dev.sigstore.bundle+json":         KindSignature,
	"application/vnd.cncf.notary.signature":            KindSignature,
	DSSEMediaType:                                      KindAttestation,
	InTotoPayloadType:                                  KindAttestation,
	"application/vnd.in-toto.bundle":                   KindAttestation,
	"application/vnd.dev.cosign.artifact.att.v1+json":  KindAttestation,
	"application/vnd.cyclonedx+json":                   KindSBOM,
	"application/vnd.cyclonedx+xml":                    KindSBOM,
	"application/vnd.cyclonedx":                        KindSBOM,
	"application/spdx+json":                            KindSBOM,
	"text/spdx":                                        KindSBOM,
	"application/vnd.syft+json":                        KindSBOM,
	"application/vnd.dev.cosign.artifact.sbom.v1+json": KindSBOM,
}

// typeKind is kindOfType of mt without its parameters (";version=0.3").
func typeKind(mt string) string {
	base, _, _ := strings.Cut(mt, ";")
	return kindOfType[strings.TrimSpace(base)]
}

// ArtifactKind classifies a manifest: by its artifactType, its config's
// media type, then its layers' (every layer of a known kind); a manifest
// with a subject whose config is not an image config is KindArtifact.
// ok is false for an image.
func ArtifactKind(m *v1.Manifest) (kind string, ok bool) {
	if k := typeKind(m.ArtifactType); k != "" {
		return k, true
	}
	if k := typeKind(string(m.Config.MediaType)); k != "" {
		return k, true
	}
	if len(m.Layers) > 0 {
		k := typeKind(string(m.Layers[0].MediaType))
		for _, l := range m.Layers[1:] {
			if typeKind(string(l.MediaType)) != k {
				k = ""
			}
		}
		if k != "" {
			return k, true
		}
	}
	imageConfig := m.Config.MediaType == types.OCIConfigJSON || m.Config.MediaType == types.DockerConfigJSON
	if m.Subject != nil && !imageConfig || m.ArtifactType != "" {
		return KindArtifact, true
	}
	return "", false
}

// Attached is one signature, attestation or SBOM stored for an image.
type Attached struct {
	Kind string `json:"kind"`
	// Subject is the digest of the image it is about.
	Subject string `json:"subject"`
	// Artifact is the digest of the manifest holding it; Layer that of its
	// layer ("" for an artifact as a whole).
	Artifact  string `json:"artifact"`
	Layer     string `json:"layer,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	// PredicateType is an attestation's (the signed statement's, else the
	// layer's annotation).
	PredicateType string `json:"predicateType,omitempty"`
	// KeyID names the key that verified the signature (see KeyID); ""
	// when none of the keys given did.
	KeyID string `json:"keyId,omitempty"`
	// Identity is a keyless signature's certificate subject (e-mail or
	// URI SAN), as the certificate claims it: its chain is not checked.
	Identity string `json:"identity,omitempty"`
	// Verified: a key verified it and what it signed names Subject.
	Verified bool `json:"verified"`
}

// ReadAttached reads the artifact manifest at ref (found under a cosign or
// referrers tag, or classified by ArtifactKind) and returns what it holds
// about subject: one Attached per signature or attestation layer, checked
// against keys, or one for the artifact as a whole. A referrers index is
// read one level down. kind is the kind the tag or manifest gave.
func ReadAttached(ctx context.Context, ref name.Digest, subject, kind string, keys []crypto.PublicKey, opts Options) ([]Attached, error) {
	ro := opts.remote(ctx)
	desc, err := remote.Get(ref, ro...)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("reading index %s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("reading index %s: %w", ref, err)
		}
		if len(im.Manifests) > maxLayers {
			return nil, fmt.Errorf("reading index %s: %d manifests, more than %d", ref, len(im.Manifests), maxLayers)
		}
		var out []Attached
		for _, d := range im.Manifests {
			if d.MediaType.IsIndex() {
				continue // one level only
			}
			k := typeKind(d.ArtifactType)
			if k == "" {
				k = KindArtifact
			}
			got, err := ReadAttached(ctx, ref.Context().Digest(d.Digest.String()), subject, k, keys, opts)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
		return out, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("reading %s: %d layers, more than %d", ref, len(m.Layers), maxLayers)
	}
	whole := Attached{Kind: kind, Subject: subject, Artifact: ref.DigestStr(), MediaType: m.ArtifactType}
	if whole.MediaType == "" {
		whole.MediaType = string(m.Config.MediaType)
	}
	var out []Attached
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType && l.MediaType != DSSEMediaType {
			continue
		}
		if l.Size > maxPayloadBytes {
			return nil, fmt.Errorf("reading %s: layer %s is %d bytes, more than %d", ref, l.Digest, l.Size, maxPayloadBytes)
		}
		b, err := readBlob(img, l.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading %s layer %s: %w", ref, l.Digest, err)
		}
		a := whole
		a.Layer, a.MediaType = l.Digest.String(), string(l.MediaType)
		if l.MediaType == SimpleSigningMediaType {
			a.Kind = KindSignature
			checkSimpleSigning(&a, keys, b, l.Annotations)
		} else {
			a.Kind = KindAttestation
			checkEnvelope(&a, keys, b, l.Annotations)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		out = append(out, whole)
	}
	return out, nil
}

// checkSimpleSigning fills a from a cosign signature layer: the key that
// verifies it, whether its payload names a.Subject, a keyless identity.
func checkSimpleSigning(a *Attached, keys []crypto.PublicKey, payload []byte, ann map[string]string) {
	a.Identity = certificateIdentity(ann[CertificateAnnotation])
	sig, err := base64.StdEncoding.DecodeString(ann[SignatureAnnotation])
	if err != nil {
		return
	}
	key, ok := verifyWith(keys, payload, sig)
	if !ok {
		return
	}
	a.KeyID = KeyID(key)
	var p SimpleSigning
	if json.Unmarshal(payload, &p) == nil && p.Critical.Type == SimpleSigningType {
		a.Verified = p.Critical.Image.DockerManifestDigest == a.Subject
	}
}

// checkEnvelope fills a from an attestation layer (a DSSE envelope).
func checkEnvelope(a *Attached, keys []crypto.PublicKey, envelope []byte, ann map[string]string) {
	a.PredicateType = ann[PredicateTypeAnnotation]
	a.Identity = certificateIdentity(ann[CertificateAnnotation])
	st, key, err := openEnvelope(keys, envelope)
	if st != nil && st.PredicateType != "" {
		a.PredicateType = st.PredicateType
	}
	if err != nil {
		return
	}
	a.KeyID = KeyID(key)
	d, derr := name.NewDigest("example.invalid/x@" + a.Subject)
	a.Verified = derr == nil && st.about(d)
}

// certificateIdentity is the first e-mail or URI SAN of a PEM certificate,
// "" when there is none or it does not parse.
func certificateIdentity(p string) string {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil {
		return ""
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return ""
	}
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses[0]
	}
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return ""
}
