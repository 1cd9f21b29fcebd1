// Package osv is the Open Source Vulnerability (OSV) record format
// (https://ossf.github.io/osv-schema/), as published by OSV.dev, the Go
// vulnerability database and the GitHub advisory database: the types, a
// strict-enough Parse that rejects records no matcher could use, and the
// ecosystem names Bulwark maps its package types to.
package osv
