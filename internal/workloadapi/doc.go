// Package workloadapi serves the SPIFFE Workload API on a node: gRPC over a
// unix socket, the protocol github.com/spiffe/go-spiffe/v2/workloadapi
// clients speak (FetchX509SVID and FetchX509Bundles as streams,
// FetchJWTSVID, FetchJWTBundles, ValidateJWTSVID).
//
// The caller is identified by the kernel, never by what it says: the
// socket's peer credentials (SO_PEERCRED) give its pid, a pidfd taken at
// connect time proves that pid is still the same process when it is
// attributed, and the node agent's attribution (cgroup -> container ->
// image digest) gives the workload. Identities come from the Manager,
// which asks the server (an Issuer) for them, renews them at half life and
// withdraws one at once when the agent sees drift in its container or the
// server says its digest was revoked: the container's streams then end
// with PermissionDenied, as SPIRE's agent does when a caller has no
// identity left.
//
// The package imports no store, API or server code: it runs in
// bulwark-agent.
package workloadapi
