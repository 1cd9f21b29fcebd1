// Package identity is Bulwark's workload identity authority: a SPIFFE
// certificate authority (a root that may be kept offline, an online
// intermediate it signs, JWT signing keys that rotate with overlap), the
// SPIFFE ID templates that name a workload from what the node agent
// attributed to it, the minting of X.509-SVIDs and JWT-SVIDs, the trust
// bundle (SPIFFE JWKS, https_web bundle endpoint profile) and the rule that
// makes an identity Bulwark's: issued and renewed only while the
// workload's image digest is certified and not revoked, the workload has
// not drifted, its node's agent is heard from and, where its policy asks
// for a TEE, a verified confidential instance vouches for it (Decide).
//
// It is a library with no store, API or server imports, so the agent may
// link it (to verify what it is handed). Private keys are kept in memory,
// sealed with internal/seal when written (files 0600) and never logged:
// no type here prints a key.
package identity
