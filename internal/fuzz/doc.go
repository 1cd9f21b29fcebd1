// Package fuzz fuzzes an HTTP API from its OpenAPI document (3.0, 3.1 or
// Swagger 2.0, read with github.com/getkin/kin-openapi) and reports what the
// responses give away.
//
// A campaign (Run) sends, for every operation, a valid request first, then
// boundary and invalid ones (generate.go): wrong types, huge strings,
// unicode, negative and overflowing numbers, missing required fields, extra
// fields, path traversal and injection strings. Values a response returns
// (an id from a POST, the parameters of a declared link) feed the path
// parameters of later requests, so GET/PUT/DELETE reach real resources.
// Every response goes through the checks (checks.go), each a named rule:
// server-error, undeclared-status, schema-mismatch, slow-response,
// auth-bypass, leaked-secret, stack-trace and data-class. The first request
// that trips a rule on an operation is shrunk (shrink.go) to a minimal
// request that still trips it, and reported with a curl line that replays
// it (report.go: table, JSON, SARIF, JUnit XML).
//
// A campaign is deterministic for a seed and a server that answers the same
// way, sends its requests one at a time, and is bounded by a request count,
// a duration and a rate. It refuses targets other than loopback addresses
// and the document's own servers unless the caller allows the host.
// docs/fuzz.md documents the rules, the budgets and the attacker model.
package fuzz
