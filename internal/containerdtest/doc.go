// Package containerdtest starts a real containerd (Debian's containerd and
// runc) for tests, with its own root, state and socket under a temporary
// directory, so tests never touch a containerd the machine runs. It needs
// root; a test skips without it, or fails when BULWARK_REQUIRE_CONTAINERD=1
// (as .ci/run sets).
package containerdtest
