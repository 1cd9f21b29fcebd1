package secrets

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// RulesVersion changes whenever what the scanner concludes from a file
// changes in a way the rule table does not show (a check function, the
// binary sniff, the order of the rules' checks). Per-layer findings kept
// with a streamed layer carry it in their key (Options.Key), with a digest
// of the rule table and of the options, so any change reads the layers
// again.
const RulesVersion = 2 // 2: at most maxFindings kept per layer

// settings are Options made ready to use.
type settings struct {
	maxSize int64
	skip    globs
	key     string
}

func (o Options) settings() (settings, error) {
	s := settings{maxSize: o.MaxFileSize}
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxFileSize
	}
	patterns := append(slices.Clone(DefaultSkipPaths), o.SkipPaths...)
	var err error
	if s.skip, err = compileGlobs(patterns); err != nil {
		return settings{}, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%d\x00%q\x00", RulesVersion, s.maxSize, patterns)
	for _, r := range contentRules {
		req := ""
		if r.requires != nil {
			req = r.requires.String()
		}
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%q\x00%s\x00%t\x00%t\x00%s\x00",
			r.ID, r.Description, r.Severity, r.pattern, r.Keywords, r.Files, r.multiline, r.skipComments, req)
	}
	s.key = fmt.Sprintf("secrets.v%d.%x", RulesVersion, h.Sum(nil)[:8])
	return s, nil
}

// scans reports whether a file of that path and size is one Scan reads
// (binary files are told later, from their content).
func (s *settings) scans(p string, size int64) bool {
	return size > 0 && size <= s.maxSize && !s.skip.match(p)
}

// Key names a scan with o in a layer results cache (image.Options.SelectKey):
// the rules version, a digest of the rule table, the size limit and the
// skipped paths.
func (o Options) Key() (string, error) {
	s, err := o.settings()
	return s.key, err
}

// Inspector is the scanner as a streaming pass's inspector
// (image.Options.Inspect): every file Scan would read is scanned as it
// streams past, and each layer's findings are kept with the layer (its
// Notes, cached with it) so that Scan, given the layers, reads none of
// their files again. Scan must then be called with the same Options.
func (o Options) Inspector() (layerfs.Inspector, error) {
	s, err := o.settings()
	if err != nil {
		return nil, err
	}
	return inspector{s: s}, nil
}

type inspector struct{ s settings }

func (in inspector) Layer() layerfs.LayerInspector {
	return &layerScan{s: &in.s, byPath: map[string][]int{}, notes: layerNotes{Key: in.s.key, Findings: []noted{}}}
}

// layerNotes are one layer's findings as kept with the layer: what does
// not depend on the image the layer is part of.
type layerNotes struct {
	Key      string  `json:"key"`
	Findings []noted `json:"findings"`
}

type noted struct {
	Rule     string `json:"rule"`
	Path     string `json:"path"`
	Line     int    `json:"line"`
	Redacted string `json:"redacted"`
	// Shadowed: the same layer writes the path again later in its tar.
	Shadowed bool `json:"shadowed,omitempty"`
}

// layerScan scans one layer's files as they stream past, one at a time:
// the file being read is gathered in buf (at most maxSize bytes) and
// scanned when complete.
type layerScan struct {
	s      *settings
	m      matcher
	notes  layerNotes
	byPath map[string][]int // findings of the last file written at a path

	path   string
	size   int64
	buf    []byte
	binary bool
}

func (l *layerScan) File(p string, _ fs.FileMode, size int64, head []byte) io.WriteCloser {
	for _, i := range l.byPath[p] {
		l.notes.Findings[i].Shadowed = true
	}
	delete(l.byPath, p)
	if !l.s.scans(p, size) || bytes.IndexByte(head, 0) >= 0 || len(l.notes.Findings) >= maxFindings {
		return nil
	}
	l.path, l.size, l.buf, l.binary = p, size, l.buf[:0], false
	return l
}

// Write gathers the current file; a NUL byte in its first sniffSize bytes
// makes it binary, and the rest is ignored.
func (l *layerScan) Write(p []byte) (int, error) {
	if l.binary {
		return len(p), nil
	}
	if n := len(l.buf); n < sniffSize && bytes.IndexByte(p[:min(len(p), sniffSize-n)], 0) >= 0 {
		l.binary, l.buf = true, l.buf[:0]
		return len(p), nil
	}
	if int64(len(l.buf)+len(p)) > l.size { // a tar reader never gives more
		l.binary = true
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	return len(p), nil
}

// Close scans the complete file.
func (l *layerScan) Close() error {
	if l.binary || int64(len(l.buf)) != l.size {
		return nil
	}
	p := l.path
	var idx []int
	for _, h := range l.m.scan(l.buf, func(r *Rule) bool { return r.paths == nil || r.paths(p) }) {
		if len(l.notes.Findings) >= maxFindings {
			break
		}
		idx = append(idx, len(l.notes.Findings))
		l.notes.Findings = append(l.notes.Findings, noted{Rule: h.rule.ID, Path: p, Line: h.line, Redacted: h.redacted})
	}
	if idx != nil {
		l.byPath[p] = idx
	}
	return nil
}

func (l *layerScan) Done() ([]byte, error) {
	l.buf = nil
	return json.Marshal(l.notes)
}

// fromNotes turns layer i's notes into findings: the layer named, and
// Deleted from the squashed view.
func (s *settings) fromNotes(fsys *layerfs.FS, i int, raw []byte) ([]Finding, error) {
	var notes layerNotes
	if err := json.Unmarshal(raw, &notes); err != nil {
		return nil, fmt.Errorf("reading the secret findings kept with layer %s: %w", fsys.LayerID(i), err)
	}
	if notes.Key != s.key {
		return nil, fmt.Errorf("layer %s was scanned for secrets in its stream with other rules or options (%s), not %s", fsys.LayerID(i), notes.Key, s.key)
	}
	if len(notes.Findings) > maxFindings {
		return nil, fmt.Errorf("the secret findings kept with layer %s are %d, more than %d", fsys.LayerID(i), len(notes.Findings), maxFindings)
	}
	out := make([]Finding, 0, len(notes.Findings))
	for _, n := range notes.Findings {
		r := ruleByID(n.Rule)
		if r == nil {
			return nil, fmt.Errorf("the secret findings kept with layer %s name an unknown rule %q", fsys.LayerID(i), n.Rule)
		}
		out = append(out, Finding{
			Rule:        r.ID,
			Description: r.Description,
			Severity:    r.Severity,
			Path:        n.Path,
			Layer:       fsys.LayerID(i),
			LayerIndex:  i,
			Line:        n.Line,
			Deleted:     n.Shadowed || deleted(fsys, n.Path, i),
			Redacted:    n.Redacted,
		})
	}
	return out, nil
}

func ruleByID(id string) *Rule {
	for _, r := range contentRules {
		if r.ID == id {
			return r
		}
	}
	return nil
}
