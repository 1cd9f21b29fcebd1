package attest

import (
	"context"
	"crypto"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

// RecordReference signs pred as an in-toto attestation (predicate type
// ReferencePredicateType, DSSE envelope) about the image ref names and
// stores it next to the image, as `cosign attest` does.
func RecordReference(ctx context.Context, ref name.Digest, s sign.Signer, pred *ReferencePredicate, opts sign.Options) error {
	if err := pred.Validate(); err != nil {
		return err
	}
	b, err := jsonMarshal(pred)
	if err != nil {
		return err
	}
	return sign.AttestImage(ctx, ref, s, ReferencePredicateType, b, opts)
}

// ReadReference verifies image ref's signature and its reference
// attestation with one of keys and returns the predicate. Several
// reference attestations by a key: the last one stored wins. A missing or
// unsigned one is a *sign.VerificationError.
func ReadReference(ctx context.Context, ref string, keys []crypto.PublicKey, opts sign.Options) (*ReferencePredicate, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("reading reference values of %s: no trusted key", ref)
	}
	var last error
	for _, k := range keys {
		v, err := sign.Verify(ctx, ref, k, sign.Requirements{Attestations: []string{ReferencePredicateType}}, opts)
		if err != nil {
			last = err
			continue
		}
		var pred *ReferencePredicate
		for _, a := range v.Attestations {
			if a.PredicateType != ReferencePredicateType {
				continue
			}
			p, err := ParseReferencePredicate(a.Statement.Predicate)
			if err != nil {
				return nil, fmt.Errorf("reading reference values of %s: %w", ref, err)
			}
			pred = p
		}
		if pred != nil {
			return pred, nil
		}
	}
	return nil, last
}
