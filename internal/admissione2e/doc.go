// Package admissione2e holds the end-to-end tests of the admission
// webhook against a real Kubernetes control plane (internal/k8stest: etcd
// and kube-apiserver built from the Go module proxy). Images live in an
// in-process OCI registry on 127.0.0.1, are certified with real
// signatures and attestations (internal/sign), and the control-plane
// server (internal/server) runs in process with its certification feed.
// The webhook is registered with the same configurations
// `bulwark admission install` prints, pointed at its in-process HTTPS
// address; every request goes through kubectl.
//
// The tests skip when the Kubernetes binaries are missing, unless
// BULWARK_REQUIRE_K8S=1 (as in .ci/run). docs/kubernetes.md has the
// timings.
package admissione2e
