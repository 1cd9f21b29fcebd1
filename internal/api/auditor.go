package api

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// AuditStore is what the Auditor needs: a transaction, a change with its
// entries in one transaction, and the database.
type AuditStore interface {
	Tx(ctx context.Context, fn func(*sql.Tx) error) error
	Audited(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) ([]audit.Entry, error)
	DB() *sql.DB
}

// Auditor appends entries to the audit log, each in its own transaction
// (which serialises appends on SQLite's write lock), and after each commit
// moves the anchor file forward.
//
// Do is how a mutation is audited: the change and its entries commit in
// one transaction. Append alone is for events that change nothing else
// (an import summary).
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
	a.anchor(got)
	return nil
}

// Do runs fn in one transaction over a view of the store and appends the
// entries fn returns in that transaction, then anchors the last one.
func (a *Auditor) Do(ctx context.Context, fn func(tx *store.Store) ([]audit.Entry, error)) error {
	got, err := a.st.Audited(ctx, fn)
	if err != nil {
		return err
	}
	if len(got) > 0 {
		a.anchor(got[len(got)-1])
	}
	return nil
}

// commitEntries appends entries in one transaction: an audit.Group's
// Commit.
func (a *Auditor) commitEntries(ctx context.Context, entries []audit.Entry) error {
	return a.Do(ctx, func(*store.Store) ([]audit.Entry, error) { return entries, nil })
}

// Anchor moves the anchor file to the newest entry of the log, for entries
// appended by the store itself (revocations).
func (a *Auditor) Anchor(ctx context.Context) error {
	if a.anchorPath == "" {
		return nil
	}
	var (
		got  audit.Entry
		seq  int64
		hash []byte
	)
	err := a.st.DB().QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the last audit entry: %w", err)
	}
	got.Seq, got.Hash = seq, hash
	a.anchor(got)
	return nil
}

// anchor writes got to the anchor file unless a later entry is anchored.
func (a *Auditor) anchor(got audit.Entry) {
	if a.anchorPath == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if got.Seq <= a.lastSeq {
		return // a later entry is already anchored
	}
	if err := audit.WriteAnchor(a.anchorPath, got); err != nil {
		// The entry is committed; a lagging anchor is allowed by design.
		slog.Warn("writing the audit anchor", "seq", got.Seq, "err", err)
		return
	}
	a.lastSeq = got.Seq
}
