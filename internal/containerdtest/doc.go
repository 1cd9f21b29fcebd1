// Package containerdtest starts a real containerd (Debian's containerd and
// runc) for tests, with its own root, state and socket under a temporary
// directory, so tests never touch a containerd the machine runs. It needs
// root; a test skips without it, or fails when BULWARK_REQUIRE_CONTAINERD=1
// (as .ci/run sets).
//
// It is also the one place the test harnesses build what they run there:
// static test programs (BuildStatic), one-layer images of files (Image,
// ImageOf; k8stest's node uses it too), containers created or started
// with cleanup (Create, Run, WithLabels for a kubelet's runtime labels),
// and the line protocol of the test probes' command sockets (Ask).
package containerdtest
