// Package netflow is the node agent's view of outbound connections: for
// the processes of each watched container it reads the kernel's socket
// tables (/proc/PID/net/tcp and tcp6, the container's network namespace)
// and the process's open sockets (/proc/PID/fd), keeps the established
// connections it did not initiate as a server (the local port is not one
// it listens on), and aggregates them per container and destination into
// the FlowBatch the agent sends to POST /api/v1/governance/flows.
//
// The attribution is the agent's, from the kernel: a socket belongs to the
// container whose process holds it. Nothing the workload says is used.
// A connection opened and closed between two scans is not seen: the
// report is a sample at the scan interval, not an audit of every packet.
//
// It is agent-side code: no store, API or server imports.
package netflow
