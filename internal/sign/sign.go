package sign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// SignImage signs the image ref names and appends the signature to the
// manifest tagged sha256-<hex>.sig in ref's repository, as `cosign sign
// --key` does. The payload is cosign's simple-signing JSON; annotations
// become its "optional" object. Signing the same payload with the same key
// again adds nothing.
func SignImage(ctx context.Context, ref name.Digest, s Signer, annotations map[string]string, opts Options) error {
	ro := opts.remote(ctx)
	tag, err := SignatureTag(ref)
	if err != nil {
		return err
	}
	if _, err := remote.Head(ref, ro...); err != nil {
		return fmt.Errorf("looking up %s: %w", ref, err)
	}
	payload, err := simpleSigningPayload(ref, annotations)
	if err != nil {
		return err
	}
	sig, err := s.Sign(ctx, payload)
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	pub := s.PublicKey()
	already := func(l storedLayer) bool {
		old, err := base64.StdEncoding.DecodeString(l.Annotations[SignatureAnnotation])
		return err == nil && checkSignature(pub, l.Payload, old)
	}
	return appendLayer(tag, payload, SimpleSigningMediaType, map[string]string{SignatureAnnotation: b64}, already, ro)
}

// AttestImage wraps predicate in an in-toto statement about the image ref
// names, signs it as a DSSE envelope and appends the envelope to the
// manifest tagged sha256-<hex>.att, as `cosign attest --key
// --type predicateType` does. predicate must be JSON.
func AttestImage(ctx context.Context, ref name.Digest, s Signer, predicateType string, predicate []byte, opts Options) error {
	if predicateType == "" {
		return errors.New("attesting: empty predicate type")
	}
	ro := opts.remote(ctx)
	tag, err := AttestationTag(ref)
	if err != nil {
		return err
	}
	if _, err := remote.Head(ref, ro...); err != nil {
		return fmt.Errorf("looking up %s: %w", ref, err)
	}
	env, err := Envelope(ctx, ref, s, predicateType, predicate)
	if err != nil {
		return err
	}
	ann := map[string]string{SignatureAnnotation: "", PredicateTypeAnnotation: predicateType}
	return appendLayer(tag, env, DSSEMediaType, ann, nil, ro)
}

// Envelope is the signed DSSE envelope of an in-toto statement about ref
// with predicate, as AttestImage stores it (and `cosign attest` writes):
// for callers that keep the attestation on disk before, or instead of,
// pushing it.
func Envelope(ctx context.Context, ref name.Digest, s Signer, predicateType string, predicate []byte) ([]byte, error) {
	if predicateType == "" {
		return nil, errors.New("attesting: empty predicate type")
	}
	stmt, err := statementPayload(ref, predicateType, predicate)
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(ctx, dsse.PAE(InTotoPayloadType, stmt))
	if err != nil {
		return nil, fmt.Errorf("signing %s attestation for %s: %w", predicateType, ref, err)
	}
	env, err := json.Marshal(dsse.Envelope{
		PayloadType: InTotoPayloadType,
		Payload:     base64.StdEncoding.EncodeToString(stmt),
		Signatures:  []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding DSSE envelope: %w", err)
	}
	return env, nil
}
