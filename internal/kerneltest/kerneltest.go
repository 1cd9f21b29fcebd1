// Package kerneltest is what tests of kernel mechanisms (fanotify, BPF,
// mount reports, namespaces) do when this machine lacks one: skip on a
// developer's laptop, fail in CI. .ci/run sets BULWARK_REQUIRE_KERNEL=1
// because its machine is root on Linux 6.18 with BTF, where every such test
// must run for real.
package kerneltest

import (
	"os"
	"testing"
)

// Skip skips t with the reason given, or fails it when
// BULWARK_REQUIRE_KERNEL=1.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("BULWARK_REQUIRE_KERNEL") == "1" {
		t.Fatalf("required (BULWARK_REQUIRE_KERNEL=1): "+format, args...)
	}
	t.Skipf(format, args...)
}
