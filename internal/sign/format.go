package sign

import (
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// Media types, annotation keys and tag suffixes of cosign's registry
// storage (cosign v2 "legacy" layout: tags, not the OCI referrers API).
const (
	// SimpleSigningMediaType is the media type of a signature layer; the
	// layer's bytes are the signed payload.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// DSSEMediaType is the media type of an attestation layer; the layer's
	// bytes are a DSSE envelope.
	DSSEMediaType = "application/vnd.dsse.envelope.v1+json"
	// SignatureAnnotation holds the base64 (standard, padded) signature of
	// a signature layer's payload. Attestation layers carry it empty.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// PredicateTypeAnnotation names an attestation layer's predicate type.
	// It is a hint for readers; Verify trusts the signed statement only.
	PredicateTypeAnnotation = "predicateType"
	// InTotoPayloadType is the DSSE payloadType of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto statement version cosign writes.
	StatementType = "https://in-toto.io/Statement/v0.1"
	// statementTypeV1 is accepted when reading.
	statementTypeV1 = "https://in-toto.io/Statement/v1"
	// SimpleSigningType is critical.type of a cosign signature payload.
	SimpleSigningType = "cosign container image signature"

	// DecisionPredicateType is the predicate type of Bulwark's policy
	// decision attestation; its predicate has at least "time" (RFC 3339)
	// and "policyDigest".
	DecisionPredicateType = "https://bulwark.dev/attestations/decision/v1"

	signatureSuffix   = "sig"
	attestationSuffix = "att"
)

// SimpleSigning is the payload of a cosign image signature (the "simple
// signing" format of containers/image, with cosign's type string).
type SimpleSigning struct {
	Critical Critical `json:"critical"`
	// Optional holds the annotations given when signing; cosign writes
	// null when there are none.
	Optional map[string]any `json:"optional"`
}

// Critical is the part of a signature payload that names the image.
type Critical struct {
	Identity struct {
		DockerReference string `json:"docker-reference"`
	} `json:"identity"`
	Image struct {
		DockerManifestDigest string `json:"docker-manifest-digest"`
	} `json:"image"`
	Type string `json:"type"`
}

// simpleSigningPayload returns the exact bytes cosign signs for ref: Go's
// encoding/json of the struct above, keys of optional sorted.
func simpleSigningPayload(ref name.Digest, annotations map[string]string) ([]byte, error) {
	var p SimpleSigning
	p.Critical.Identity.DockerReference = ref.Context().Name()
	p.Critical.Image.DockerManifestDigest = ref.DigestStr()
	p.Critical.Type = SimpleSigningType
	if len(annotations) > 0 {
		p.Optional = make(map[string]any, len(annotations))
		for k, v := range annotations {
			p.Optional[k] = v
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding signature payload: %w", err)
	}
	return b, nil
}

// Statement is an in-toto statement (v0.1 written, v0.1 and v1 read).
type Statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []Subject       `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject is what a statement is about: for an image, the repository name
// and the manifest digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// statementPayload returns the in-toto statement for ref, as cosign attest
// builds it: subject name is the repository, digest the sha256 hex.
func statementPayload(ref name.Digest, predicateType string, predicate []byte) ([]byte, error) {
	if !json.Valid(predicate) {
		return nil, fmt.Errorf("predicate of type %q is not valid JSON", predicateType)
	}
	h, err := hashOf(ref)
	if err != nil {
		return nil, err
	}
	st := Statement{
		Type:          StatementType,
		PredicateType: predicateType,
		Subject:       []Subject{{Name: ref.Context().Name(), Digest: map[string]string{h.Algorithm: h.Hex}}},
		Predicate:     predicate,
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding in-toto statement: %w", err)
	}
	return b, nil
}
