package api

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// AuditStore is what the Auditor needs: a transaction and the database.
type AuditStore interface {
	Tx(ctx context.Context, fn func(*sql.Tx) error) error
	DB() *sql.DB
}

// Auditor appends entries to the audit log, each in its own transaction
// (which serialises appends on SQLite's write lock), and after each commit
// moves the anchor file forward.
//
// The store's EnqueueJob and CreateToken do not take a transaction yet, so
// the entry of a mutation is appended right after the mutation commits, not
// with it: a crash between the two leaves one unaudited change (never an
// audited change that did not happen).
type Auditor struct {
	st         AuditStore
	anchorPath string // "" writes no anchor

	mu      sync.Mutex
	lastSeq int64
}

// NewAuditor returns an Auditor over st that writes the anchor to
// anchorPath (audit.AnchorPath of the database) when it is not empty.
func NewAuditor(st AuditStore, anchorPath string) *Auditor {
	return &Auditor{st: st, anchorPath: anchorPath}
}

// Append writes e as the next entry of the chain.
func (a *Auditor) Append(ctx context.Context, e audit.Entry) error {
	var got audit.Entry
	err := a.st.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		got, err = audit.Append(ctx, tx, e)
		return err
	})
	if err != nil {
		return fmt.Errorf("auditing %s of %s: %w", e.Action, e.Object, err)
	}
	if a.anchorPath == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if got.Seq <= a.lastSeq {
		return nil // a later entry is already anchored
	}
	if err := audit.WriteAnchor(a.anchorPath, got); err != nil {
		// The entry is committed; a lagging anchor is allowed by design.
		slog.Warn("writing the audit anchor", "seq", got.Seq, "err", err)
		return nil
	}
	a.lastSeq = got.Seq
	return nil
}
