// Package assess runs the whole judgement of one image: inventory
// (catalog), known vulnerabilities (match, with VEX), secrets in every layer
// (secrets), and the policy decision over all of them (policy). The policy
// check, certify and the server's re-evaluation all go through Run, so an
// image is judged the same way everywhere.
package assess
