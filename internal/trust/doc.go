// Package trust is the server's view of whether a running workload may
// hold an identity: its image digest's certification (certified, not
// revoked), the drift its node's agent reported for its container, and
// its node's last heartbeat (Facts, read from the store at each decision
// so every replica answers alike), the feed that pushes certification
// changes to agents (Feed, a long poll over the audit log's commit order)
// the identities this server issued (Registry, which the secret store
// asks by SPIFFE ID), and the attestation condition of the identity rule
// (TEEPolicy: which workloads need a verified confidential instance of
// which TEE kind and region, read from the instance tracker's memory).
//
// It reads the store and never writes it: decisions are recorded by the
// API, in the audit log.
package trust
