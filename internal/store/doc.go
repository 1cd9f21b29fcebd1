// Package store is the control plane's persistence: images and their tags,
// inventories and the (ecosystem, package) -> digest index that continuous
// re-evaluation reads, decisions, certifications, background jobs, API tokens
// and registries, in one SQL database.
//
// Two backends, one type (Store): SQLite (one file, WAL mode; Open) and
// PostgreSQL for several server replicas on one database (OpenPostgres, or
// Open with a postgres:// DSN). The SQL is kept portable: what differs
// between the two (column types of generated ids and blobs, placeholders,
// the row lock of a job claim, the schema version, the lock that serialises
// audited transactions) sits in one small dialect struct and in postgres.go.
// See docs/store.md.
//
//	s, err := store.Open(ctx, filepath.Join(dataDir, "bulwark.db"))
//	err = s.PutInventory(ctx, digest, inv, nil)
//	digests, err := s.DigestsFor(ctx, "Debian:12", "openssl") // affected set of one advisory
//	job, err := s.ClaimJob(ctx, "replica-1", "scan")
//
// Writes that must also be audited run in one transaction with Tx, where
// audit.Append writes the audit entry next to the change.
package store
