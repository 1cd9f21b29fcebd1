// Package identitye2e holds the workload identity end-to-end test: a real
// bulwark server with a trust domain, a real bulwark-agent serving the
// SPIFFE Workload API, and go-spiffe programs in containers run by a real
// containerd (internal/containerdtest; BULWARK_REQUIRE_CONTAINERD=1 makes
// a would-be skip fail, as CI sets it).
package identitye2e
