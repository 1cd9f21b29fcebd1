// Package spool is the agent's outbox on disk: records appended with a
// sequence number that grows across restarts, read back in order, and
// removed once acknowledged. It is bounded in bytes: when full, the
// oldest segment is dropped and its unsent records counted.
//
// Layout of the directory: segment files "seg-<first seq, 20 digits>.log"
// holding framed records (length, CRC-32C, seq, payload) and "state.json"
// holding the spool's id, the highest acknowledged seq and the drop count.
// A torn frame at the end of a segment (the agent died mid-write) is cut
// off when the spool is opened; a damaged frame elsewhere ends that
// segment and its remaining records count as dropped.
//
// Appends are written to the file at once (they survive the agent's
// death); Sync makes them survive the node's too.
package spool
