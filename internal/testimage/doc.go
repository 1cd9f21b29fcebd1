// Package testimage builds the real images Bulwark's tests and benchmarks
// scan: a Debian bookworm (minbase) root filesystem made by debootstrap, a Go
// program built with old module versions, and an npm tree installed from the
// npm registry with known-vulnerable versions. The slow parts are built once
// and cached under $BULWARK_TEST_CACHE (default ~/.cache/bulwark-test); a
// test skips when the tools to build them (root and debootstrap, go, npm)
// are missing.
package testimage
