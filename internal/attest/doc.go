// Package attest verifies hardware TEE evidence offline: AMD SEV-SNP
// attestation reports, Intel TDX quotes (v4) and Intel SGX DCAP quotes (v3).
//
// A Verifier holds the collateral (vendor roots, AMD VCEK certificates,
// Intel TCB info, QE identity and CRLs) supplied ahead of time and a pinned
// clock; Verify never touches the network. Every refusal is a *RefusedError
// carrying a Reason (wrong signature, wrong root, TCB out of date or
// revoked, debug, nonce mismatch or replay, expired collateral, measurement
// mismatch), so the server, the CLI and admission decide from the reason and
// print the detail.
//
// SEV-SNP and TDX verification is delegated to Google's go-sev-guest and
// go-tdx-guest libraries (signatures, chains, field layouts); SGX DCAP v3
// quotes are parsed here, on go-tdx-guest's PCK certificate and collateral
// types. Reference values (what an image's enclave must measure) and the
// image's own TEE policy travel as a signed in-toto attestation next to the
// image: RecordReference writes it, ReadReference verifies and reads it.
//
// Around Verify: LoadOptions reads a collateral directory and DirDigest
// says when it changed; Binding is the REPORT_DATA that binds a server's
// nonce (and a key); Rejudge decides a recorded Result against new
// collateral or policy without the evidence, which is how
// internal/instance revokes thousands of instances when Intel publishes
// new TCB info or a PCK CRL, or AMD a security bulletin.
package attest
