// Package server is the composition root of `bulwark server`: Run opens
// the store in the data directory and runs the HTTP API, the scan workers
// and the stale-job requeuer as tasks of one errgroup. The first task to
// fail cancels the others; cancelling the context (SIGTERM) shuts all of
// them down cleanly and Run returns nil.
package server
