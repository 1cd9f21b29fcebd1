// Package certify writes a certification: for an image digest that passed
// the policy, the in-toto attestations (SBOM, vulnerability scan, policy
// decision) and then the cosign-compatible signature, next to the image in
// its registry. `bulwark certify` and the server's scan job both use it, so
// a certification looks the same whoever made it.
package certify
