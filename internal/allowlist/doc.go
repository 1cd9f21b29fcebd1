// Package allowlist says what may run in a container: per image digest, the
// content digests (SHA-256) of the image's executable files, plus whatever
// its entrypoint and cmd name, from the inventory's file table when it
// carries digests, else from the image's layers.
//
// A List is compiled per container (Compile) into a lookup keyed by file
// identity (device, inode, change and modification time, size): a file seen
// before costs one map lookup. A file not seen before is hashed once through
// the descriptor the kernel handed over, and the digest is kept in a
// DigestCache shared by every container on the node, under the same key. A
// write to a file changes its change time, so a modified file misses both
// and is hashed again.
//
// Every input is bounded: the number of file table entries, path length,
// symlink hops and the size of a file hashed at exec time.
package allowlist
