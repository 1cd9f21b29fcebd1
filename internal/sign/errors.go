package sign

import (
	"errors"
	"fmt"
)

// Reasons a verification fails. A *VerificationError wraps exactly one;
// test with errors.Is.
var (
	// ErrNoSignature: no signature is stored for the digest the reference
	// resolves to (never signed, or the tag moved to an unsigned image).
	ErrNoSignature = errors.New("no signature")
	// ErrDigestMismatch: a signature or attestation verifies with the key
	// but names another digest than the one the reference resolves to.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrRepositoryMismatch: a signature verifies and names the digest, but
	// its docker-reference is another repository.
	ErrRepositoryMismatch = errors.New("repository mismatch")
	// ErrBadSignature: signatures are stored but none verifies with the
	// key (wrong key, or tampered payload or signature).
	ErrBadSignature = errors.New("bad signature")
	// ErrMissingAttestation: no attestation of a required predicate type
	// is stored.
	ErrMissingAttestation = errors.New("missing attestation")
	// ErrStaleDecision: the newest matching decision attestation is older
	// than the allowed age (or dated in the future).
	ErrStaleDecision = errors.New("stale decision")
	// ErrPolicyMismatch: the decision attestation was made under another
	// policy digest than the one required.
	ErrPolicyMismatch = errors.New("policy digest mismatch")
	// ErrDecisionFailed: the decision attestation records a failed gate.
	ErrDecisionFailed = errors.New("decision did not pass")
	// ErrUntrusted: no trust policy entry covers the repository.
	ErrUntrusted = errors.New("untrusted repository")
)

// VerificationError is a decision: the image was looked at and is not
// trusted. Any other error from Verify means nothing was decided (the
// registry was unreachable, an input was malformed, ...).
type VerificationError struct {
	// Reference is the reference as given.
	Reference string
	// Digest is what Reference resolved to, when it got that far.
	Digest string
	// Reason explains the failure in one line.
	Reason string
	// Err is one of the Err* sentinels of this package.
	Err error
}

func (e *VerificationError) Error() string {
	if e.Digest != "" && e.Digest != e.Reference {
		return fmt.Sprintf("verifying %s (%s): %s", e.Reference, e.Digest, e.Reason)
	}
	return fmt.Sprintf("verifying %s: %s", e.Reference, e.Reason)
}

// Unwrap returns the sentinel, for errors.Is.
func (e *VerificationError) Unwrap() error { return e.Err }
