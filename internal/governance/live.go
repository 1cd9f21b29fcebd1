package governance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Live is the catalogue in force, replaced when its file changes: the
// secret store and the governance service read it through Live, so a new
// grant or residency applies without a restart. Every replacement is
// audited (governance.catalogue, with the files' SHA-256 before and
// after); a file that does not parse is logged and the catalogue in force
// kept.
type Live struct {
	Path    string
	Auditor Auditor
	Log     *slog.Logger
	// Changed is called after a replacement (the secret store reloads its
	// secrets' residency).
	Changed func(ctx context.Context)

	cur    atomic.Pointer[Catalogue]
	digest string
	stamp  string // size and modification time of the file read
}

// NewLive reads path (an empty catalogue when path is "").
func NewLive(path string) (*Live, error) {
	l := &Live{Path: path}
	c, err := Parse(nil)
	if path != "" {
		var b []byte
		if b, err = os.ReadFile(path); err == nil {
			c, err = Parse(b)
			l.digest, l.stamp = sum(b), stamp(path)
		}
		if err != nil {
			return nil, fmt.Errorf("reading governance catalogue %s: %w", path, err)
		}
	}
	l.cur.Store(c)
	return l, nil
}

func sum(b []byte) string { h := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(h[:]) }

func stamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}

// Catalogue is the catalogue in force.
func (l *Live) Catalogue() *Catalogue { return l.cur.Load() }

// ClassRegions is the catalogue in force's (secretstore.Catalogue).
func (l *Live) ClassRegions(class string) ([]string, bool) { return l.Catalogue().ClassRegions(class) }

// Granted is the catalogue in force's (secretstore.Grants).
func (l *Live) Granted(app, class string) bool { return l.Catalogue().Granted(app, class) }

// NodeRegion is the catalogue in force's.
func (l *Live) NodeRegion(node string) string { return l.Catalogue().NodeRegion(node) }

// Check reads the file again when its size or time changed; it reports
// whether the catalogue was replaced.
func (l *Live) Check(ctx context.Context) (bool, error) {
	if l.Path == "" || stamp(l.Path) == l.stamp {
		return false, nil
	}
	st := stamp(l.Path)
	b, err := os.ReadFile(l.Path)
	if err != nil {
		return false, fmt.Errorf("reading governance catalogue %s: %w", l.Path, err)
	}
	d := sum(b)
	if d == l.digest {
		l.stamp = st
		return false, nil
	}
	c, err := Parse(b)
	if err != nil {
		l.stamp = st // logged once, not every check
		return false, fmt.Errorf("governance catalogue %s changed but does not parse (the previous one stays in force): %w", l.Path, err)
	}
	if l.Auditor != nil {
		before, _ := json.Marshal(map[string]string{"sha256": l.digest})
		after, _ := json.Marshal(map[string]string{"sha256": d, "file": l.Path})
		err := l.Auditor.Do(ctx, func(*store.Store) ([]audit.Entry, error) {
			return []audit.Entry{{Actor: "file:" + l.Path, Action: "governance.catalogue", Object: "governance:catalogue", Before: before, After: after}}, nil
		})
		if err != nil {
			return false, err
		}
	}
	l.cur.Store(c)
	l.digest, l.stamp = d, st
	if l.Changed != nil {
		l.Changed(ctx)
	}
	return true, nil
}

// Run checks the file every interval until ctx ends.
func (l *Live) Run(ctx context.Context, every time.Duration) error {
	if l.Path == "" {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changed, err := l.Check(ctx)
		switch {
		case err != nil && l.Log != nil:
			l.Log.Error("governance catalogue", "err", err)
		case changed && l.Log != nil:
			l.Log.Info("governance catalogue replaced", "file", l.Path, "sha256", l.digest)
		}
	}
}
