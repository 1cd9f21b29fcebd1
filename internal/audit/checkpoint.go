package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// checkpointDomain starts every signed checkpoint message.
const checkpointDomain = "bulwark.audit.checkpoint/v1"

// Checkpoint is a signed statement "entry Seq of the audit log has hash
// Hash", made at Time with the checkpoint key KeyID names. Since each hash
// covers every entry before it, a checkpoint vouches for the whole history
// up to Seq; kept where the database's writer cannot rewrite it (an
// append-only file elsewhere, a webhook receiver, an OCI registry), it
// makes a rewritten history detectable by anyone holding the public key.
// Seq 0 is the empty log (Hash: 32 zero bytes).
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      []byte    `json:"hash"` // base64 in JSON
	Time      time.Time `json:"time"`
	KeyID     string    `json:"keyId"`
	Signature []byte    `json:"signature"` // Ed25519 over checkpointMessage
}

// ErrCheckpointSignature is returned when a checkpoint's signature does not
// verify with the key it is checked against.
var ErrCheckpointSignature = errors.New("checkpoint signature does not verify")

// KeyID names pub: the first 8 bytes of its SHA-256, hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// checkpointMessage is what a checkpoint signs: the domain, seq in
// decimal, the hash and the time (RFC 3339 with nanoseconds, UTC), each
// length-prefixed as the entry hash encodes its fields.
func checkpointMessage(seq int64, sum []byte, at time.Time) []byte {
	var b bytes.Buffer
	writeFields(&b, []byte(checkpointDomain), strconv.AppendInt(nil, seq, 10), sum, []byte(formatTime(at)))
	return b.Bytes()
}

// SignCheckpoint returns the checkpoint of entry seq with hash sum at time
// at, signed with key.
func SignCheckpoint(key ed25519.PrivateKey, seq int64, sum []byte, at time.Time) Checkpoint {
	at = at.UTC()
	return Checkpoint{
		Seq:       seq,
		Hash:      bytes.Clone(sum),
		Time:      at,
		KeyID:     KeyID(key.Public().(ed25519.PublicKey)),
		Signature: ed25519.Sign(key, checkpointMessage(seq, sum, at)),
	}
}

// Verify checks c's signature with pub. The error wraps
// ErrCheckpointSignature.
func (c Checkpoint) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("checking checkpoint %d: the public key is %d bytes, want %d", c.Seq, len(pub), ed25519.PublicKeySize)
	}
	if c.KeyID != KeyID(pub) {
		return fmt.Errorf("checkpoint %d is signed by key %q, not %q: %w", c.Seq, c.KeyID, KeyID(pub), ErrCheckpointSignature)
	}
	if c.Seq < 0 || len(c.Hash) != sha256.Size || !ed25519.Verify(pub, checkpointMessage(c.Seq, c.Hash, c.Time), c.Signature) {
		return fmt.Errorf("checkpoint %d: %w", c.Seq, ErrCheckpointSignature)
	}
	return nil
}

// Head returns the newest entry's seq and hash: 0 and 32 zero bytes for an
// empty log.
func Head(ctx context.Context, db Querier) (int64, []byte, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the audit log's last entry: %w", err)
	}
	defer rows.Close()
	seq, sum := int64(0), make([]byte, sha256.Size)
	if rows.Next() {
		if err := rows.Scan(&seq, &sum); err != nil {
			return 0, nil, fmt.Errorf("reading the audit log's last entry: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("reading the audit log's last entry: %w", err)
	}
	return seq, sum, nil
}

// Evidence is what VerifyEvidence checks the chain against besides
// itself.
type Evidence struct {
	// Anchor is the anchor file's content; nil when there is none.
	Anchor *Anchor
	// Checkpoints are signed checkpoints from wherever they were kept, in
	// any order; each must verify with PublicKey.
	Checkpoints []Checkpoint
	PublicKey   ed25519.PublicKey
	// AllowMissingAnchor and AllowMissingCheckpoint waive the failure of a
	// missing anchor (for a non-empty log) and of having no checkpoint.
	AllowMissingAnchor, AllowMissingCheckpoint bool
}

// VerifyEvidence is Verify, then checks every checkpoint (signature, and
// the hash of the entry it names) and the anchor. A missing anchor or no
// checkpoint at all is a failure unless waived: without them, a truncated
// or rewritten log looks like a shorter, valid one. The report names the
// newest checkpoint that vouches for the log (Checkpoint) and whether an
// anchor was checked. It returns an error only when the log cannot be
// read or a checkpoint was given without a public key.
func VerifyEvidence(ctx context.Context, db Querier, ev Evidence) (Report, error) {
	if len(ev.Checkpoints) > 0 && len(ev.PublicKey) == 0 {
		return Report{}, errors.New("checking audit checkpoints: no checkpoint public key")
	}
	need := map[int64][]byte{}
	for _, c := range ev.Checkpoints {
		need[c.Seq] = nil
	}
	if ev.Anchor != nil {
		need[ev.Anchor.Seq] = nil
	}
	rep, err := walk(ctx, db, need)
	if err != nil || !rep.OK {
		return rep, err
	}
	cps := slices.SortedStableFunc(slices.Values(ev.Checkpoints), func(a, b Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, c := range cps {
		if err := c.Verify(ev.PublicKey); err != nil {
			rep.fail(max(c.Seq, 1), Forged, fmt.Sprintf("the checkpoint of entry %d made at %s does not verify with key %s: %v", c.Seq, formatTime(c.Time), KeyID(ev.PublicKey), err))
			return rep, nil
		}
		if rep.fromEvidence(c.Seq, c.Hash, need, fmt.Sprintf("the checkpoint signed at %s", formatTime(c.Time))); !rep.OK {
			return rep, nil
		}
		rep.Checkpoint = &c
	}
	if ev.Anchor != nil {
		if rep.fromEvidence(ev.Anchor.Seq, ev.Anchor.Hash, need, "the anchor"); !rep.OK {
			return rep, nil
		}
		rep.Anchored = true
	}
	switch {
	case ev.Anchor == nil && !ev.AllowMissingAnchor && (rep.LastSeq > 0 || rep.Checkpoint != nil && rep.Checkpoint.Seq > 0):
		rep.fail(rep.LastSeq+1, Unanchored, "there is no anchor file: entries removed from the end would go unnoticed (waive with --allow-missing-anchor)")
	case len(cps) == 0 && !ev.AllowMissingCheckpoint:
		rep.fail(1, Unsigned, "there is no signed checkpoint: a rewritten history would verify (waive with --allow-missing-checkpoint)")
	}
	return rep, nil
}

// fromEvidence fails r when the log does not hold entry seq with hash sum,
// as what (a checkpoint, the anchor) says it does.
func (r *Report) fromEvidence(seq int64, sum []byte, need map[int64][]byte, what string) {
	switch {
	case seq > r.LastSeq:
		r.fail(r.LastSeq+1, Truncated, fmt.Sprintf("the log ends at entry %d but %s vouches for entry %d", r.LastSeq, what, seq))
	case !bytes.Equal(need[seq], sum):
		r.fail(seq, Rewritten, fmt.Sprintf("entry %d does not have the hash %s vouches for: the log up to it was rewritten", seq, what))
	}
}
