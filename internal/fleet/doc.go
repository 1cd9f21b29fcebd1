// Package fleet is the server's running inventory: every node an agent
// reports (kernel, region, enforcement state, last heartbeat, its own
// packages) and every container running on it (image digest, pod,
// namespace, owner application, start time), held in memory and indexed
// by image digest and by advisory.
//
// The advisory index spans the running set: each distinct running digest,
// and each node's host packages, is matched once against the advisory
// database (in the background, by Run) and filed under the ids of its
// findings, so "which pods on which nodes run something advisory X
// affects, and which hosts are affected" is a few map lookups (Running).
// An advisory import marks everything for matching again (Rematch).
//
// A workload of a revoked digest that the index learns of after the
// revocation (a container restarted, a heartbeat late) is an arrival
// (RevokedArrivals), which the server answers as the revocation did.
//
// Workloads are known from what agents report, never from what a workload
// says about itself. See docs/runtime.md.
package fleet
