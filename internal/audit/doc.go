// Package audit is the control plane's append-only, hash-chained audit log:
// who changed what, when, with the object's state before and after.
//
// Each entry's hash is SHA-256 over a length-prefixed encoding of its
// fields and the previous entry's hash, so editing, removing or reordering
// an entry breaks the chain from that entry on, and Verify says where.
// Removing the newest entries leaves a shorter valid chain: an Anchor (the
// latest seq and hash, kept outside the database) makes that detectable.
//
//	err := s.Tx(ctx, func(tx *sql.Tx) error {
//		// ... the change itself ...
//		e, err = audit.Append(ctx, tx, audit.Entry{Actor: "token:3", Action: "certification.revoke", Object: digest, Before: b, After: a})
//		return err
//	})
//	err = audit.WriteAnchor(anchorPath, e) // after the commit
//	rep, err := audit.VerifyAnchored(ctx, db, anchor)
//
// The table lives in the store's database (Schema is part of its
// migrations). See docs/store.md for the format and its limits.
package audit
