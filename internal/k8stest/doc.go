// Package k8stest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver, built from the Go module proxy by .ci/build-k8s.sh into
// $BULWARK_K8S_DIR (default $HOME/.cache/bulwark/k8s-v1.37.2), started on
// free ports of 127.0.0.1 with certificates made in Go (internal/pki), and
// stopped with the test. Kubectl runs the cached kubectl against it.
//
// There is no controller-manager, scheduler or kubelet: objects are stored
// and admitted (which is what admission tests need), not run. The
// ServiceAccount admission plugin is disabled so pods need no default
// ServiceAccount, and --allow-privileged is on so privileged pods reach
// the admission webhooks instead of being refused by validation.
//
// Start skips the test when the binaries are missing, unless
// BULWARK_REQUIRE_K8S=1, when it fails naming .ci/build-k8s.sh.
package k8stest
