// Package sign signs container images and attaches in-toto attestations to
// them in the registry, and verifies both, in the formats cosign uses, so
// that `cosign verify --key` and `cosign verify-attestation --key` accept
// what Bulwark writes and Bulwark accepts what `cosign sign --key` writes.
//
// Keys are ECDSA P-256. GenerateKey writes the private key in cosign's
// encrypted PEM format (scrypt + NaCl secretbox); LoadPrivateKey reads that
// format and plain PKCS#8 / SEC 1 PEM; LoadPublicKey reads PKIX PEM.
//
// SignImage stores a "simple signing" payload naming the image digest as a
// layer of the image manifest tagged sha256-<hex>.sig in the image's
// repository; AttestImage stores a DSSE envelope of an in-toto statement in
// the manifest tagged sha256-<hex>.att. Both append to what is there.
//
// Verify resolves a reference to its digest at the time of the call and
// checks the signatures and the required attestations against that digest.
// A failed check is a *VerificationError (errors.Is-able against
// ErrNoSignature, ErrDigestMismatch, ErrBadSignature, ErrMissingAttestation,
// ...); any other error (network, registry, malformed input) means nothing
// was decided. TrustPolicy maps repositories to the keys trusted for them
// and the attestations they require.
//
// docs/signing.md describes the formats byte by byte.
package sign
