// Package secretstore is the server's store of secrets for workloads:
// key/value and file secrets with versions and rotation, encrypted at rest
// with envelope encryption, and released to a workload only when its
// SPIFFE identity, certification, drift state, attestation, region and
// data-class grants satisfy the secret's release policy.
//
// Envelope encryption: every version has its own random 256-bit data key;
// the value is AES-256-GCM under it, and the data key is wrapped by a
// key-encryption key (KEK) that never reaches the database: a key file or
// environment variable (FileKEK over internal/seal) or a PKCS#11 token
// (PKCS11KEK, tested against SoftHSM). Both ciphertexts carry the secret's
// name and version as associated data, so a row copied onto another name
// does not open.
//
// Release decisions are made from memory: policies and workload trust are
// in maps (Trust, the server's view of each running workload from its own
// store: heartbeats, certifications, drift, owner application, region,
// attestation), opened values are cached per version; the only write on
// the release path is the audit entry, group-committed. Workloads fetch
// over mTLS with their X.509-SVID (Handler, also Vault's KV v2 read path);
// agents fetch for the containers they deliver to (ReleaseToContainer,
// internal/secretfile writes the files).
//
// This is not internal/secrets, which scans images for secrets that must
// not be there.
package secretstore
