// Package canary proves that exec enforcement is on: it writes a file that
// no allowlist holds (a drifted file) into a throwaway place the agent
// watches in prevent (a tmpfs mount marked for fanotify, or a cgroup the
// BPF-LSM program watches with an empty list), execs it in a child and
// expects EPERM. An exec that runs, fails otherwise or is not answered in
// time means the mechanism is not enforcing, whatever the agent believes.
//
// The drifted file is a tiny static ELF program that exits 0 (x86-64 and
// arm64; elsewhere a "#!/bin/sh" script), so an escape is a clean exit and
// nothing else.
package canary
