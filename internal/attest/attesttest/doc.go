// Package attesttest makes synthetic TEE evidence for tests and benchmarks:
// SGX DCAP v3 quotes and TDX v4 quotes (the real quote's layout re-signed)
// under a test Intel-style PKI with its own collateral, and SEV-SNP reports
// signed by go-sev-guest's test-only AMD chain. A test
// key stands in for the hardware key; everything above the signature check
// is the production code path. Never trust these roots outside tests.
package attesttest
