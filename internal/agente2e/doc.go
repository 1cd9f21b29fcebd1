// Package agente2e holds the tests of the bulwark-agent Helm chart
// (deploy/helm/bulwark-agent): rendered with the real helm, checked field
// by field for what the agent needs and what it must not get, its config
// file read by the real agent binary, and its objects validated by a real
// kube-apiserver (internal/k8stest).
//
// A package of its own rather than a file in internal/admissione2e: the
// helm helpers moved to internal/k8stest (helm.go), so nothing of
// admissione2e is shared, and the agent's tests stay apart from the
// webhook's server and registry fixtures.
//
// The tests skip when helm or the Kubernetes binaries are missing, unless
// BULWARK_REQUIRE_K8S=1 (as in .ci/run).
package agente2e
