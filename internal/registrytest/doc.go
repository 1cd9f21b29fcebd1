// Package registrytest runs a real OCI registry (go-containerregistry's
// pkg/registry) in process for tests, and counts the requests it serves so
// tests can show what was (not) downloaded.
package registrytest
