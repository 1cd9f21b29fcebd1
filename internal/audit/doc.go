// Package audit is the control plane's append-only, hash-chained audit log:
// who changed what, when, with the object's state before and after.
//
// Each entry's hash is SHA-256 over a length-prefixed encoding of its
// fields and the previous entry's hash, so editing, removing or reordering
// an entry breaks the chain from that entry on, and Verify says where.
//
// The chain proves consistency, not authenticity: whoever can write the
// database can recompute it after an edit. Two kinds of evidence kept
// outside the database close that gap:
//
//   - an Anchor (the latest seq and hash, in a file moved forward after
//     every commit) makes removing the newest entries detectable;
//   - a Checkpoint is the same statement signed with an Ed25519 key that
//     is sealed (internal/seal) in a file and never in the database. It is
//     exported where the database's writer cannot rewrite it (an
//     append-only checkpoint log, a webhook, an OCI registry; see
//     internal/audit/checkpoint), and anyone with the public key can check
//     that the log still holds the history the checkpoint vouches for.
//
// VerifyEvidence checks the chain, every checkpoint and the anchor; a
// missing anchor or no checkpoint at all is a failure unless waived.
//
//	err := s.Tx(ctx, func(tx *sql.Tx) error {
//		// ... the change itself ...
//		e, err = audit.Append(ctx, tx, audit.Entry{Actor: "token:3", Action: "certification.revoke", Object: digest, Before: b, After: a})
//		return err
//	})
//	err = audit.WriteAnchor(anchorPath, e) // after the commit
//	seq, sum, err := audit.Head(ctx, db)
//	err = audit.AppendCheckpoint(logPath, audit.SignCheckpoint(key, seq, sum, time.Now()))
//	rep, err := audit.VerifyEvidence(ctx, db, audit.Evidence{Anchor: &anchor, Checkpoints: cps, PublicKey: pub})
//
// A Group batches the entries of hot paths (identity decisions, secret
// releases) into shared transactions; each entry still commits before its
// caller goes on.
//
// The table lives in the store's database (Schema is part of its
// migrations). See docs/store.md for the format and its limits.
package audit
