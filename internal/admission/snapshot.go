package admission

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// snapshotVersion is the version of the snapshot's format.
const snapshotVersion = 1

// snapshot is the feed state the webhook writes to server.cacheFile after
// each poll that changed it, and reads at start: a webhook restarted while
// the server is unreachable then decides as the one before it did (known
// certified digests admitted, revoked ones denied) instead of knowing no
// revocation.
type snapshot struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	// Server is the URL the feed came from; a snapshot of another server
	// is not used.
	Server string `json:"server"`
	// Trust fingerprints the trust policy and requirements Verified was
	// verified under; when they differ, Verified and Since are dropped.
	Trust string `json:"trust"`
	// Since is the feed's cursor, and AuditSeq its commit-ordered one.
	Since    time.Time `json:"since"`
	AuditSeq int64     `json:"auditSeq,omitempty"`
	// Entries are the digests' statuses and tags, oldest change first.
	Entries []feedEntry `json:"entries"`
	// Verified maps repository@digest to when this webhook verified it.
	Verified map[string]time.Time `json:"verified"`
}

// trustFingerprint digests what a verification depends on: the trust
// policy's repositories, keys and attestations, the required policy
// digest and the decision age.
func trustFingerprint(cfg *Config) string {
	type entry struct {
		Repositories, Attestations []string
		Keys                       [][]byte
	}
	var v struct {
		Entries        []entry
		PolicyDigest   string
		MaxDecisionAge time.Duration
	}
	v.PolicyDigest, v.MaxDecisionAge = cfg.PolicyDigest, cfg.MaxDecisionAge
	if cfg.TrustPolicy != nil {
		for _, e := range cfg.TrustPolicy.Entries {
			te := entry{Repositories: e.Repositories, Attestations: e.Attestations}
			for _, k := range e.Keys {
				der, err := x509.MarshalPKIXPublicKey(k)
				if err != nil {
					der = fmt.Appendf(nil, "%T %v", k, k)
				}
				te.Keys = append(te.Keys, der)
			}
			v.Entries = append(v.Entries, te)
		}
	}
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// loadSnapshot reads the snapshot into the cache and the feed's cursor.
// It reports whether one was used; a missing, unreadable or corrupt one
// is logged and treated as none.
func (w *Webhook) loadSnapshot(file string) bool {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		w.log.Info("no feed snapshot yet", "file", file)
		return false
	}
	if err != nil {
		w.log.Warn("feed snapshot unreadable; starting without it", "file", file, "err", err)
		return false
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		w.log.Warn("feed snapshot corrupt; starting without it", "file", file, "err", err)
		return false
	}
	switch {
	case s.Version != snapshotVersion:
		w.log.Warn("feed snapshot of another version; starting without it", "file", file, "version", s.Version)
		return false
	case s.Server != w.cfg.Server.URL:
		w.log.Warn("feed snapshot of another server; starting without it", "file", file, "snapshot_server", s.Server, "server", w.cfg.Server.URL)
		return false
	}
	for _, e := range s.Entries {
		if e.Digest == "" {
			w.log.Warn("feed snapshot corrupt (an entry without digest); starting without it", "file", file)
			return false
		}
	}
	c := w.images.cache
	if s.Trust != trustFingerprint(w.cfg) {
		// Digests verified under other keys or requirements are verified
		// again; the statuses (revocations) still hold, and the next poll
		// fetches everything to verify the certified digests ahead of time.
		w.log.Warn("trust policy changed since the feed snapshot; its verified digests are verified again", "file", file)
		s.Verified, s.Since, s.AuditSeq = nil, time.Time{}, 0
	}
	c.mu.Lock()
	maps.Copy(c.verified, s.Verified)
	c.mu.Unlock()
	// Applied after the verified digests, the statuses drop any that a
	// revocation reached after they were verified.
	sort.SliceStable(s.Entries, func(i, j int) bool { return s.Entries[i].Updated.Before(s.Entries[j].Updated) })
	c.apply(s.Entries)
	c.mu.RLock()
	w.savedGen = c.gen
	c.mu.RUnlock()
	w.feed.since, w.feed.auditSeq = s.Since, s.AuditSeq
	w.savedSince = s.Since
	w.log.Info("feed snapshot loaded", "file", file, "saved", s.Saved, "entries", len(s.Entries), "verified", len(s.Verified))
	return true
}

// saveSnapshot writes the feed state when it changed since the last
// write. The caller holds feedMu.
func (w *Webhook) saveSnapshot() error {
	if w.cacheFile == "" {
		return nil
	}
	c := w.images.cache
	c.mu.RLock()
	gen := c.gen
	if gen == w.savedGen && w.feed.since.Equal(w.savedSince) {
		c.mu.RUnlock()
		return nil
	}
	s := snapshot{Version: snapshotVersion, Saved: w.now().UTC(), Server: w.cfg.Server.URL, Trust: w.trust,
		Since: w.feed.since, AuditSeq: w.feed.auditSeq, Entries: make([]feedEntry, 0, len(c.status)), Verified: maps.Clone(c.verified)}
	for _, e := range c.status {
		s.Entries = append(s.Entries, e)
	}
	c.mu.RUnlock()
	sort.SliceStable(s.Entries, func(i, j int) bool {
		if !s.Entries[i].Updated.Equal(s.Entries[j].Updated) {
			return s.Entries[i].Updated.Before(s.Entries[j].Updated)
		}
		return s.Entries[i].Digest < s.Entries[j].Digest
	})
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding feed snapshot: %w", err)
	}
	if err := writeFileAtomic(w.cacheFile, b); err != nil {
		return fmt.Errorf("writing feed snapshot %s: %w", w.cacheFile, err)
	}
	w.savedGen, w.savedSince = gen, s.Since
	return nil
}

// writeFileAtomic writes b to file through a temporary file in the same
// directory, mode 0600, renamed over file: a reader (or a crash) sees the
// old snapshot or the new one, never half of one.
func writeFileAtomic(file string, b []byte) error {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // after the rename, nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, file)
}
