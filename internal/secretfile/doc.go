// Package secretfile is the agent's side of secret delivery: a secret
// volume per container, a directory on a tmpfs the agent owns
// (ROOT/<container id>/, bind-mounted into the container, CSI-like), into
// which the agent writes the secrets the server released for that
// container: a file secret as the file NAME, a kv secret as the
// directory NAME/ with one file per key. Each file is replaced by an
// atomic rename, so a reader sees the old or the new version, never a
// mix; a rotation appears in the running container without a restart. A
// secret the server refuses (trust lost: drift, revocation, a node out of
// region) is removed at once; a container gone has its volume removed.
//
// The volume must be a tmpfs: secrets never reach a disk (Check).
// Agent-side code: no store, API or server imports.
package secretfile
