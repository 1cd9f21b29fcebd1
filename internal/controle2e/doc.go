// Package controle2e holds the runtime control loop's end-to-end test on
// a real node: kube-apiserver, etcd and kube-controller-manager
// (Deployments), a kubelet on a private containerd, bulwark-agent
// enforcing on that containerd, and bulwark server with a response
// policy. A drifted exec in a Deployment's pod is refused and the pod
// replaced by its ReplicaSet; an advisory import that revokes the running
// digest rolls the Deployment back to the last known-good digest.
//
// It needs root, containerd, runc and the Kubernetes binaries that
// .ci/build-k8s.sh builds; it skips without them, or fails under
// BULWARK_REQUIRE_KUBELET=1 (as .ci/run sets).
package controle2e
