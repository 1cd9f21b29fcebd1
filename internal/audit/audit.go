package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Schema returns the statement creating the audit_log table, with blobType
// the database's type of opaque bytes (BLOB in SQLite, BYTEA in PostgreSQL).
// before and after are the JSON documents exactly as hashed; a database
// must not re-encode them (in PostgreSQL: TEXT, never JSONB, which reorders
// keys and drops whitespace).
func Schema(blobType string) string {
	return strings.ReplaceAll(schema, "BLOB", blobType)
}

const schema = `
CREATE TABLE audit_log (
	seq       BIGINT PRIMARY KEY,
	time      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	object    TEXT NOT NULL,
	before    TEXT NOT NULL DEFAULT '',
	after     TEXT NOT NULL DEFAULT '',
	prev_hash BLOB NOT NULL,
	hash      BLOB NOT NULL
);`

// domain starts every hashed encoding, so an entry hash cannot be mistaken
// for any other SHA-256 Bulwark computes.
const domain = "bulwark.audit/v1"

// Entry is one audit record.
type Entry struct {
	Seq    int64     `json:"seq"` // 1, 2, 3 ... set by Append
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // who: "token:12 (ci)", "system:reevaluate"
	Action string    `json:"action"` // what: "registry.create", "certification.revoke"
	Object string    `json:"object"` // on what: a digest, a registry name
	// Before and After are JSON documents of the object's state; empty
	// when it did not exist before or no longer exists after.
	Before   []byte `json:"before,omitempty"`
	After    []byte `json:"after,omitempty"`
	PrevHash []byte `json:"prevHash"`
	Hash     []byte `json:"hash"`
}

// Execer is what Append needs: a *sql.DB or, to audit a change in the same
// transaction as the change, a *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Append writes e as the next entry of the chain and returns it with Seq,
// Time (now, when zero), PrevHash and Hash filled. Run it in the
// transaction of the change it records, serialised with every other
// appender: on SQLite a transaction begun IMMEDIATE (it takes the write
// lock at BEGIN), on PostgreSQL a transaction that called Lock first
// (store.Tx does both). Should two appends still race, one fails on the seq
// primary key; the chain never forks.
//
// The queries use $1, $2 ... placeholders, which both PostgreSQL and SQLite
// (as numbered parameters) accept.
func Append(ctx context.Context, db Execer, e Entry) (Entry, error) {
	var prev []byte
	err := db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&e.Seq, &prev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		e.Seq, prev = 0, make([]byte, sha256.Size)
	case err != nil:
		return Entry{}, fmt.Errorf("reading the audit log's last entry: %w", err)
	}
	e.Seq++
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	e.PrevHash = prev
	e.Hash = hash(e.Seq, formatTime(e.Time), e.Actor, e.Action, e.Object, e.Before, e.After, e.PrevHash)
	_, err = db.ExecContext(ctx, `INSERT INTO audit_log
		(seq, time, actor, action, object, before, after, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.Seq, formatTime(e.Time), e.Actor, e.Action, e.Object, string(e.Before), string(e.After), e.PrevHash, e.Hash)
	if err != nil {
		return Entry{}, fmt.Errorf("appending audit entry %d: %w", e.Seq, err)
	}
	return e, nil
}

// LockKey is the PostgreSQL advisory lock key that serialises appends.
const LockKey int64 = 0x62776b5f61756474 // "bwk_audt"

// Lock takes the PostgreSQL transaction-scoped advisory lock that
// serialises audit appends across connections and replicas; it is released
// when tx commits or rolls back. Call it first in a PostgreSQL transaction
// that will Append (store.Tx does). PostgreSQL only: SQLite has no such
// function and needs none.
func Lock(ctx context.Context, tx Execer) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, LockKey); err != nil {
		return fmt.Errorf("taking the audit lock: %w", err)
	}
	return nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// hash is SHA-256 over the domain string and every field, each written as
// its length (uint64, big-endian) then its bytes: seq in decimal, time as
// stored (RFC 3339 with nanoseconds, UTC), actor, action, object, before,
// after, prev_hash. Length prefixes make the encoding unambiguous: no two
// different entries encode to the same bytes.
func hash(seq int64, t, actor, action, object string, before, after, prev []byte) []byte {
	h := sha256.New()
	writeFields(h, []byte(domain), strconv.AppendInt(nil, seq, 10), []byte(t), []byte(actor), []byte(action), []byte(object), before, after, prev)
	return h.Sum(nil)
}

// writeFields writes each field to w as its length (uint64, big-endian)
// then its bytes: the unambiguous encoding of entries and checkpoints.
func writeFields(w io.Writer, fields ...[]byte) {
	for _, b := range fields {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		w.Write(n[:])
		w.Write(b)
	}
}

// Querier is what Verify needs: a *sql.DB or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Problems Verify reports.
const (
	Edited    = "edited"    // the entry's fields do not hash to its hash
	Missing   = "missing"   // a seq is absent
	Reordered = "reordered" // prev_hash is not the previous entry's hash
	Truncated = "truncated" // entries the anchor or a checkpoint vouches for are gone
	// Rewritten: the entry an anchor or a checkpoint names has another
	// hash, the history up to it was replaced by a different valid chain.
	Rewritten  = "rewritten"
	Forged     = "forged"     // a checkpoint's signature does not verify with the checkpoint key
	Unanchored = "unanchored" // no anchor file, and none was waived
	Unsigned   = "unsigned"   // no signed checkpoint, and none was waived
)

// Report is the outcome of Verify.
type Report struct {
	Entries  int    `json:"entries"`  // entries read
	LastSeq  int64  `json:"lastSeq"`  // the last entry's seq
	LastHash []byte `json:"lastHash"` // and its hash
	OK       bool   `json:"ok"`
	// BrokenSeq is the first seq at which the chain breaks, Problem the kind
	// of break and Reason a sentence about it; all zero when OK.
	BrokenSeq int64  `json:"brokenSeq,omitempty"`
	Problem   string `json:"problem,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Checkpoint is the newest checkpoint VerifyEvidence checked: entries
	// up to its seq are vouched for by its signature. Anchored is whether
	// an anchor was checked.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Anchored   bool        `json:"anchored,omitempty"`
}

func (r *Report) fail(seq int64, problem, reason string) {
	r.OK, r.BrokenSeq, r.Problem, r.Reason = false, seq, problem, reason
}

// Verify reads the whole log in seq order and recomputes the chain. It
// returns an error only when the log cannot be read; a broken chain is a
// Report with OK false, naming the first broken seq.
func Verify(ctx context.Context, db Querier) (Report, error) {
	return walk(ctx, db, nil)
}

// walk is Verify, and records in need the hash of every seq need holds
// (seq 0 is the genesis: 32 zero bytes) as the chain passes it.
func walk(ctx context.Context, db Querier, need map[int64][]byte) (Report, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, time, actor, action, object, before, after, prev_hash, hash
		FROM audit_log ORDER BY seq`)
	if err != nil {
		return Report{}, fmt.Errorf("reading the audit log: %w", err)
	}
	defer rows.Close()
	rep := Report{OK: true}
	prev := make([]byte, sha256.Size)
	if _, ok := need[0]; ok {
		need[0] = prev
	}
	for rows.Next() {
		var (
			seq                          int64
			t, actor, action, object     string
			before, after, prevHash, sum []byte
		)
		if err := rows.Scan(&seq, &t, &actor, &action, &object, &before, &after, &prevHash, &sum); err != nil {
			return Report{}, fmt.Errorf("reading the audit log: %w", err)
		}
		want := rep.LastSeq + 1
		rep.Entries++
		switch {
		case seq != want:
			rep.fail(want, Missing, fmt.Sprintf("entry %d is missing: the next entry is %d", want, seq))
		case !bytes.Equal(prevHash, prev):
			rep.fail(seq, Reordered, fmt.Sprintf("entry %d does not follow entry %d: its prev_hash is not that entry's hash", seq, seq-1))
		case !bytes.Equal(hash(seq, t, actor, action, object, before, after, prevHash), sum):
			rep.fail(seq, Edited, fmt.Sprintf("entry %d was changed: its fields do not hash to its hash", seq))
		}
		if !rep.OK {
			return rep, nil
		}
		if _, ok := need[seq]; ok {
			need[seq] = sum
		}
		rep.LastSeq, rep.LastHash, prev = seq, sum, sum
	}
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("reading the audit log: %w", err)
	}
	return rep, nil
}

// VerifyAnchored is Verify, and also checks that the entry anchor names
// is still there with the anchored hash: removing the newest entries (or
// rewriting the whole chain) is reported at the anchor's seq. A zero
// anchor checks nothing more. It is VerifyEvidence with only an anchor and
// every waiver: `bulwark audit verify` asks for more.
func VerifyAnchored(ctx context.Context, db Querier, anchor Anchor) (Report, error) {
	ev := Evidence{AllowMissingAnchor: true, AllowMissingCheckpoint: true}
	if anchor.Seq != 0 {
		ev.Anchor = &anchor
	}
	return VerifyEvidence(ctx, db, ev)
}
