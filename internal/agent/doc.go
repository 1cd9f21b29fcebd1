// Package agent is bulwark-agent, the node agent: it watches every exec in
// every container on the node and compares what is about to run with what
// the container's image contains.
//
// The pieces, each in its own package or file:
//
//   - allowlist (internal/allowlist): per image digest, the content digests
//     of the image's executable files plus its entrypoint and cmd, compiled
//     per container into a lookup keyed by file identity (device, inode,
//     change time) in front of a content-digest cache.
//   - fanotify (internal/fanotify): FAN_OPEN_EXEC_PERM marks, one per
//     container root filesystem (FAN_MARK_FILESYSTEM): the kernel holds each
//     execve until the agent answers allow or deny.
//   - attribution (attrib.go, containerd.go): the device of the exec'd
//     file's filesystem -> the container whose overlay root it is; else
//     pid -> /proc/PID/cgroup -> containerd container. Each container knows
//     its image digest. Containers that existed before the agent started
//     are adopted at start, new ones at containerd's /tasks/create event.
//
// Modes: off (no marks), detect (every drifted exec runs and is reported),
// prevent (a drifted exec fails with EPERM before the new program runs, and
// is reported). docs/runtime.md holds the threat model and what is not
// covered.
package agent
