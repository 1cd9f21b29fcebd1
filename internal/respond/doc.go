// Package respond answers runtime evidence with the action a per
// namespace and application policy chooses: a drifted container's pod is
// replaced (deleted, so its controller recreates it from the certified
// digest), a running digest whose certification is revoked is rolled back
// (its Deployment, StatefulSet or DaemonSet patched to the repository's
// rollback target), a pod is quarantined (labelled, and a deny-all
// NetworkPolicy selects it), or an alert is sent.
//
// Every response is recorded in the store under a key that names it for
// good before it is taken, audited and notified (runtime.response) in the
// same transaction, and finished afterwards: a crash mid-response resumes
// the recorded response on restart and never takes a second one. Safety
// limits turn an action into an alert: at most N actions per namespace in
// a window (a bad advisory cannot take a cluster down), a circuit breaker
// per controller (a replacement that drifts again stops after N), no
// rollback without a known-good target; dry-run records what would have
// happened and does nothing. See docs/runtime.md.
package respond
