// Package admission is Bulwark's Kubernetes admission webhook: it admits
// only images whose digest is certified under a trust policy and not
// revoked, pins tags to digests, and enforces least privilege (a Pod
// Security Standards level, baseline or restricted at a Kubernetes
// version: level.go, pss.go), workload placement and owner labels on Pods
// and every pod-owning kind (Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job, CronJob).
//
// The pieces:
//
//   - Config (LoadConfig reads it from YAML, errors name file:line) says
//     which trust policy and keys certify images, which rules apply in
//     which namespaces and in which mode (enforce, warn, audit), how
//     sensitive workloads are placed, which owner labels are required,
//     where the control-plane server is and how long a first-sight
//     verification may take.
//   - New builds a *Webhook; Handler serves POST /validate and POST /mutate
//     (admission.k8s.io/v1 AdmissionReview), GET /healthz, /readyz and
//     /metrics. Run polls the server's certification feed
//     (GET /api/v1/certifications) and verifies newly certified digests
//     ahead of time.
//   - Decisions come from an in-memory cache of digests this webhook has
//     verified itself (signature and required attestations under the trust
//     policy). A known digest costs no network call. An unknown one is
//     resolved and verified on first sight within Config.VerifyBudget; a
//     revocation from the feed drops it from the cache at once. When
//     nothing can be decided in time the request is denied (failure policy
//     "closed", the default) or admitted with a warning ("open").
//   - Until a configured server's feed has been reached since start, an
//     image not verified in this process is undecided (revocations are
//     unknown). Server.CacheFile persists the feed state (snapshot.go) so
//     a restart while the server is down starts from the last one.
//   - An UPDATE is judged by what it changes (update.go): a workload only
//     when its pod template changes, a Pod only for what the update adds.
//   - Evaluate and DecodeObjects are what `bulwark check` uses to apply the
//     same rules offline to YAML files.
//
// The command line is `bulwark admission serve --admission-config FILE
// --listen :8443 --tls-cert FILE --tls-key FILE` (the global --config is
// Bulwark's own config file). docs/admission.md describes the
// configuration, the decisions, the timeouts and the failure policy.
package admission
