package secrets

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// DefaultMaxFileSize bounds the files scanned; bigger files are skipped.
const DefaultMaxFileSize = 8 << 20

// maxFindings bounds the findings kept per layer (by the streaming pass)
// and per image (by Scan): a pushed image of many files full of tokens
// must not make the scanner hold them all. The image fails any secrets
// gate long before; which findings past the bound are kept is not
// specified (TestFindingsBounded).
const maxFindings = 10000

// sniffSize is how much of a file is checked for a NUL byte: a file with one
// is binary and skipped.
const sniffSize = 8 << 10

// Options tune a scan.
type Options struct {
	// MaxFileSize skips bigger files; zero means DefaultMaxFileSize.
	MaxFileSize int64
	// SkipPaths are path globs (see DefaultSkipPaths for the syntax) of
	// files and trees not to scan, in addition to DefaultSkipPaths.
	SkipPaths []string
}

// Finding is one secret. It never holds the secret itself.
type Finding struct {
	Rule        string `json:"rule"`
	Description string `json:"description"`
	Severity    string `json:"severity"` // critical, high or medium
	// Path is the file, or "ENV" or "history[N]" for the image config.
	Path string `json:"path"`
	// Layer is the diffID of the layer that wrote the file; "" for the
	// config and for a directory source.
	Layer string `json:"layer"`
	// LayerIndex counts from 0 at the bottom layer; -1 for the config.
	LayerIndex int `json:"layerIndex"`
	// Line is 1-based: the line in the file, the variable's position in
	// ENV, or the line of the history entry.
	Line int `json:"line"`
	// Deleted reports that a later layer removed or replaced the file: the
	// secret is not in the squashed view but is still in the image.
	Deleted bool `json:"deleted"`
	// Redacted is the secret with all but its first characters replaced by
	// '*'.
	Redacted string `json:"redacted"`
}

// job is one file of one layer to scan.
type job struct {
	file layerfs.LayerFile
	// shadowed: the same layer writes the path again later in its tar.
	shadowed bool
}

// Scan finds the secrets in every file of every layer of fsys and in cfg,
// which may be nil (a directory source). A layer that carries its findings
// from a streaming pass (Options.Inspector) is not read again: its findings
// are taken as they are, only Deleted is decided from fsys. Findings are
// sorted by layer index (the config, -1, first), path, line and rule.
func Scan(ctx context.Context, fsys *layerfs.FS, cfg *v1.ConfigFile, opts Options) ([]Finding, error) {
	s, err := opts.settings()
	if err != nil {
		return nil, err
	}
	var (
		jobs []job
		out  []Finding
	)
	for i, l := range fsys.Layers() {
		if l.Notes != nil {
			found, err := s.fromNotes(fsys, i, l.Notes)
			if err != nil {
				return nil, err
			}
			out = append(out, found...)
			continue
		}
		files := fsys.LayerFiles(i)
		last := make(map[string]int, len(files))
		for j, f := range files {
			last[f.Path] = j
		}
		for j, f := range files {
			if s.scans(f.Path, f.Size) {
				jobs = append(jobs, job{file: f, shadowed: last[f.Path] != j})
			}
		}
	}

	var (
		mu         sync.Mutex
		next, kept atomic.Int64
	)
	kept.Store(int64(len(out)))
	g, ctx := errgroup.WithContext(ctx)
	for range min(runtime.GOMAXPROCS(0), max(len(jobs), 1)) {
		g.Go(func() error {
			w := worker{fsys: fsys}
			var found []Finding
			for {
				n := int(next.Add(1)) - 1
				if n >= len(jobs) {
					break
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				if kept.Load() >= maxFindings {
					break
				}
				fnd, err := w.scanFile(jobs[n])
				if err != nil {
					return err
				}
				kept.Add(int64(len(fnd)))
				found = append(found, fnd...)
			}
			mu.Lock()
			out = append(out, found...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if cfg != nil {
		out = append(out, scanConfig(cfg)...)
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.LayerIndex, b.LayerIndex),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Redacted, b.Redacted),
		)
	})
	return out[:min(len(out), maxFindings)], nil
}

// worker scans files one after the other, reusing its buffers.
type worker struct {
	fsys *layerfs.FS
	buf  []byte
	m    matcher
}

func (w *worker) scanFile(j job) ([]Finding, error) {
	f := j.file
	r, err := w.fsys.OpenLayerFile(f)
	if errors.Is(err, layerfs.ErrSparse) {
		return nil, nil // rare (GNU tar --sparse); documented as not scanned
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s in layer %d: %w", f.Path, f.Layer, err)
	}
	defer r.Close()
	text, err := w.read(r, f.Size)
	if err != nil {
		return nil, fmt.Errorf("reading %s in layer %d: %w", f.Path, f.Layer, err)
	}
	if text == nil {
		return nil, nil // binary
	}
	hits := w.m.scan(text, func(r *Rule) bool { return r.paths == nil || r.paths(f.Path) })
	if len(hits) == 0 {
		return nil, nil
	}
	deleted := j.shadowed || deleted(w.fsys, f.Path, f.Layer)
	out := make([]Finding, 0, len(hits))
	for _, h := range hits {
		out = append(out, Finding{
			Rule:        h.rule.ID,
			Description: h.rule.Description,
			Severity:    h.rule.Severity,
			Path:        f.Path,
			Layer:       w.fsys.LayerID(f.Layer),
			LayerIndex:  f.Layer,
			Line:        h.line,
			Deleted:     deleted,
			Redacted:    h.redacted,
		})
	}
	return out, nil
}

// read returns the file's bytes, or nil for a binary file, which it stops
// reading after the first sniffSize bytes.
func (w *worker) read(r io.Reader, size int64) ([]byte, error) {
	if int64(cap(w.buf)) < size {
		w.buf = make([]byte, size)
	}
	b := w.buf[:size]
	head := min(size, sniffSize)
	if _, err := io.ReadFull(r, b[:head]); err != nil {
		return nil, err
	}
	if bytes.IndexByte(b[:head], 0) >= 0 {
		return nil, nil
	}
	if _, err := io.ReadFull(r, b[head:]); err != nil {
		return nil, err
	}
	return b, nil
}

// deleted reports whether the squashed view no longer shows the file layer
// wrote at p: the path is gone, is something else, or a later layer wrote
// it.
func deleted(fsys *layerfs.FS, p string, layer int) bool {
	n, err := fsys.Lstat(p)
	return err != nil || n.Path != p || !n.IsRegular() || n.Layer != layer
}
