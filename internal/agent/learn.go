package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// LearnedPredicateType is the in-toto predicate type of a learned
// allowlist attestation.
const LearnedPredicateType = "https://bulwark.dev/attestations/learned-allowlist/v1"

// maxLearned bounds the contents one window may add: a workload that runs
// more than this many distinct new programs in its window is not learning
// a list, it is being attacked or is not a fit for one.
const maxLearned = 4096

// ReasonLearning: a drifted exec let through (and recorded) because its
// workload's learning window is open.
const ReasonLearning = "learning"

// LearnConfig is the learning window: every image digest's first
// container opens a window of Window; what runs in it beyond the image's
// list is recorded and let run, then the list is locked with it, signed
// as an attestation written to Dir (and pushed next to the image when
// Push is set).
type LearnConfig struct {
	Window time.Duration
	// ByNamespace overrides Window per namespace (Kubernetes namespace by
	// the pod label, else containerd namespace); 0 turns learning off there.
	ByNamespace map[string]time.Duration
	Dir         string
	Signer      sign.Signer // nil: the learned list is written unsigned (a warning)
	Push        bool
	// Registry tunes the push (credentials, transport).
	Registry sign.Options
}

// learning is one image digest's window.
type learning struct {
	image, ref string // manifest digest; the image name containerd knows
	start, end time.Time
	mu         sync.Mutex
	seen       map[allowlist.Digest]string
	locked     bool
}

// Learned is the predicate of a learned allowlist attestation.
type Learned struct {
	Image   string         `json:"image"`
	Node    string         `json:"node,omitempty"`
	Start   time.Time      `json:"start"`
	End     time.Time      `json:"end"`
	Base    int            `json:"base"` // contents the image's own list allows
	Learned []LearnedEntry `json:"learned"`
}

// LearnedEntry is one content that ran in the window.
type LearnedEntry struct {
	Digest string `json:"digest"`
	Path   string `json:"path"`
}

// learnFor is the learning window of a container of containerd namespace
// ns with labels.
func (a *Agent) learnFor(ns string, labels map[string]string) time.Duration {
	return a.decide(subjectOfLabels(ns, labels)).Learn // modes.go
}

// learning reports whether any namespace learns.
func (c LearnConfig) learning() bool {
	if c.Window > 0 {
		return true
	}
	for _, d := range c.ByNamespace {
		if d > 0 {
			return true
		}
	}
	return false
}

// window returns the learning window of an image, opening one of length
// d for a digest seen for the first time (the first container's namespace
// decides); nil when d is zero and none is open.
func (a *Agent) window(image, ref string, d time.Duration) *learning {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.learning == nil {
		a.learning = map[string]*learning{}
	}
	l, ok := a.learning[image]
	if !ok && d <= 0 {
		return nil
	}
	if !ok {
		now := time.Now().UTC()
		l = &learning{image: image, ref: ref, start: now, end: now.Add(d), seen: map[allowlist.Digest]string{}}
		a.learning[image] = l
		a.log.Info("learning window opened", "image", image, "until", l.end)
	}
	return l
}

// open tells whether the window is still open at now (nil is closed).
func (l *learning) open(now time.Time) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.locked && !now.After(l.end)
}

// learn records content d that ran from path in an open window and says
// whether the exec may run for it.
func (l *learning) learn(d allowlist.Digest, path string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locked || now.After(l.end) {
		return false
	}
	if _, ok := l.seen[d]; !ok && len(l.seen) >= maxLearned {
		return false
	}
	if _, ok := l.seen[d]; !ok {
		l.seen[d] = path
	}
	return true
}

// learnLoop locks each window when it ends.
func (a *Agent) learnLoop(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			a.mu.RLock()
			var due []*learning
			for _, l := range a.learning {
				l.mu.Lock()
				if !l.locked && now.After(l.end) {
					l.locked = true
					due = append(due, l)
				}
				l.mu.Unlock()
			}
			a.mu.RUnlock()
			for _, l := range due {
				if err := a.lock(ctx, l); err != nil {
					a.log.Error("locking a learned allowlist", "image", l.image, "error", err)
				}
			}
		}
	}
}

// lock makes the learned contents part of the image's list in every
// container of it, and writes (and pushes) the signed attestation.
func (a *Agent) lock(ctx context.Context, l *learning) error {
	l.mu.Lock()
	extra := make(map[allowlist.Digest]string, len(l.seen))
	for d, p := range l.seen {
		extra[d] = p
	}
	l.mu.Unlock()
	a.mu.Lock()
	base := a.lists[l.image]
	var list *allowlist.List
	if base != nil {
		list = base.With(extra)
		a.lists[l.image] = list
		for _, c := range a.containers {
			if c.image == l.image {
				c.relisted.Store(allowlist.Compile(list, verdictsPerContainer))
				a.sensorKill(c) // unheldkill.go
			}
		}
	}
	a.mu.Unlock()
	if list != nil && a.lsm != nil {
		a.relistLSM(ctx, l.image)
	}
	pred := Learned{Image: l.image, Node: a.cfg.Node, Start: l.start, End: l.end, Learned: []LearnedEntry{}}
	if base != nil {
		pred.Base = base.Len()
	}
	for d, p := range extra {
		pred.Learned = append(pred.Learned, LearnedEntry{Digest: d.String(), Path: p})
	}
	sort.Slice(pred.Learned, func(i, j int) bool { return pred.Learned[i].Digest < pred.Learned[j].Digest })
	a.log.Info("learning window locked", "image", l.image, "learned", len(pred.Learned))
	return a.attestLearned(ctx, l.ref, pred)
}

// attestLearned signs the learned list as an in-toto attestation about
// the image, writes the DSSE envelope to the learn directory and pushes it
// next to the image when asked.
func (a *Agent) attestLearned(ctx context.Context, ref string, pred Learned) error {
	body, err := json.Marshal(pred)
	if err != nil {
		return fmt.Errorf("encoding the learned list of %s: %w", pred.Image, err)
	}
	hex := strings.TrimPrefix(pred.Image, "sha256:")
	if _, err := allowlist.ParseDigest(pred.Image); err != nil {
		return err // never a file name from an unchecked digest
	}
	if err := os.MkdirAll(a.cfg.Learn.Dir, 0o755); err != nil {
		return fmt.Errorf("writing the learned list of %s: %w", pred.Image, err)
	}
	s := a.cfg.Learn.Signer
	if s == nil {
		a.log.Warn("no --learn-key: the learned list is written unsigned", "image", pred.Image)
		return writeFileAtomic(filepath.Join(a.cfg.Learn.Dir, hex+".learned.json"), body)
	}
	d, err := imageDigestRef(ref, pred.Image)
	if err != nil {
		return err
	}
	env, err := sign.Envelope(ctx, d, s, LearnedPredicateType, body)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.Learn.Dir, hex+".learned.intoto.json"), env); err != nil {
		return err
	}
	if a.cfg.Learn.Push {
		if err := sign.AttestImage(ctx, d, s, LearnedPredicateType, body, a.cfg.Learn.Registry); err != nil {
			return fmt.Errorf("pushing the learned list of %s: %w", d, err)
		}
		a.log.Info("learned list pushed", "image", d.String())
	}
	return nil
}

// imageDigestRef is the image's repository (from the name containerd
// knows) at its manifest digest: the attestation's subject.
func imageDigestRef(ref, digest string) (name.Digest, error) {
	repo := "bulwark.invalid/unknown"
	if r, err := name.ParseReference(ref); err == nil {
		repo = r.Context().String()
	}
	d, err := name.NewDigest(repo + "@" + digest)
	if err != nil {
		return name.Digest{}, fmt.Errorf("naming image %q at %s: %w", ref, digest, err)
	}
	return d, nil
}

// writeFileAtomic writes b to path (mode 0644) through a fresh file in its
// directory, renamed over it: a name planted in advance (a symlink to a
// file of the host's) is never written through.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %q: %w", path, err)
	}
	return nil
}
