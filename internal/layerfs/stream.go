package layerfs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"strings"
)

// ErrNotRetained reports a file whose content a streaming pass did not keep
// because no reader asked for it (its metadata and digest are known).
var ErrNotRetained = errors.New("file content was not kept by the streaming pass")

// Selector tells a streaming pass which files' content to keep.
type Selector interface {
	// Want tells whether to keep the content of the regular file at p
	// (clean, absolute), from its mode, size and first bytes (up to 512).
	// Probe keeps it until its end, then asks Keep.
	Want(p string, mode fs.FileMode, size int64, head []byte) Want
	// Keep decides, with the whole content at hand, whether to keep a file
	// that Want answered Probe for.
	Keep(p string, content io.ReaderAt, size int64) bool
}

// Want is a Selector's answer for one file.
type Want int

// Answers of Selector.Want.
const (
	Skip Want = iota
	Keep
	Probe
)

// Digests tells which files a streaming pass hashes (SHA-256).
type Digests int

const (
	// DigestExecutables hashes regular files with an executable bit, an ELF
	// or script (#!) header, and shared libraries (*.so, *.so.N).
	DigestExecutables Digests = iota
	// DigestAll hashes every regular file.
	DigestAll
	// DigestNone hashes nothing.
	DigestNone
)

// StreamOptions tune IndexStream.
type StreamOptions struct {
	Select  Selector
	Digests Digests
	// TempDir receives, unlinked, the kept content of a layer past
	// MemLimit bytes. Empty means os.TempDir.
	TempDir string
	// MemLimit is how much kept content stays in memory; zero is 8 MiB.
	MemLimit int64
	// Inspect, when set, sees every regular file's content as it streams
	// past; its per-layer result is the layer's Notes.
	Inspect Inspector
	// MaxLayerSize, when positive, is the largest layer Decode accepts
	// from a results cache (its size and kept content, checked before
	// anything is copied).
	MaxLayerSize int64
}

var (
	elfMagic    = []byte("\x7fELF")
	scriptMagic = []byte("#!")
)

// headSize is how much of each file Want sees.
const headSize = 512

// Hashable reports whether a file is one DigestExecutables hashes.
func Hashable(p string, mode fs.FileMode, head []byte) bool {
	if mode.Perm()&0o111 != 0 || bytes.HasPrefix(head, elfMagic) || bytes.HasPrefix(head, scriptMagic) {
		return true
	}
	base := path.Base(p)
	return strings.HasSuffix(base, ".so") || strings.Contains(base, ".so.")
}

// Indexed is one layer read by a streaming pass: every entry's metadata,
// the digests, and only the content the Selector kept.
type Indexed struct {
	DiffID string
	// Size is the layer's uncompressed tar size, when the caller knows it.
	Size int64
	// Notes are what StreamOptions.Inspect concluded about the layer; nil
	// when it was not inspected.
	Notes   []byte
	entries []entry
	content *Spool      // kept content of a streamed layer, or nil
	data    io.ReaderAt // what entries' offsets point into
	closer  io.Closer   // may be nil
}

// Close releases the kept content.
func (ix *Indexed) Close() error {
	if ix.closer != nil {
		return ix.closer.Close()
	}
	return nil
}

// Kept is the number of bytes of content kept.
func (ix *Indexed) Kept() int64 {
	if ix.content == nil {
		return 0
	}
	return ix.content.Size()
}

// IndexLayer indexes a seekable layer in place, as Build does: nothing is
// kept or hashed, every file is read from l.Data.
func IndexLayer(l Layer) (*Indexed, error) {
	e, err := indexTar(l)
	if err != nil {
		return nil, err
	}
	return &Indexed{DiffID: l.DiffID, Size: l.Size, entries: e, data: l.Data}, nil
}

// IndexStream reads one layer's uncompressed tar in stream order, in one
// pass: headers are checked as Build checks them, the files the Selector
// wants are kept, hashable files are hashed, and every other byte is
// discarded as it is read.
func IndexStream(r io.Reader, diffID string, opts StreamOptions) (*Indexed, error) {
	sp := NewSpool(opts.TempDir, opts.MemLimit)
	ix := &Indexed{DiffID: diffID, content: sp, data: sp, closer: sp}
	err := ix.read(r, opts)
	if err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

func (ix *Indexed) read(r io.Reader, opts StreamOptions) error {
	var insp LayerInspector
	if opts.Inspect != nil {
		insp = opts.Inspect.Layer()
	}
	tr := tar.NewReader(r)
	last := "(start of layer)"
	head := make([]byte, headSize)
	buf := make([]byte, 64<<10) // for every file copied: io.Copy would allocate one each time
	h256 := sha256.New()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			if insp != nil {
				if ix.Notes, err = insp.Done(); err != nil {
					return fmt.Errorf("inspecting layer %s: %w", ix.DiffID, err)
				}
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("tar is truncated: %w", err)
			}
			return &EntryError{Layer: ix.DiffID, Entry: last, Err: fmt.Errorf("reading tar header after this entry: %w", err)}
		}
		last = h.Name
		e, skip, err := headerEntry(h)
		if err != nil {
			return &EntryError{Layer: ix.DiffID, Entry: h.Name, Err: err}
		}
		if skip {
			continue
		}
		if len(ix.entries) >= maxEntries {
			return &EntryError{Layer: ix.DiffID, Entry: h.Name, Err: fmt.Errorf("%w: more than %d", ErrTooManyEntries, maxEntries)}
		}
		e.off = -1
		if e.typ == tar.TypeReg && !e.sparse && !strings.HasPrefix(path.Base(e.name), whiteoutPrefix) {
			if err := ix.readFile(tr, &e, head, buf, h256, opts, insp); err != nil {
				return &EntryError{Layer: ix.DiffID, Entry: h.Name, Err: err}
			}
		}
		ix.entries = append(ix.entries, e)
	}
}

func (ix *Indexed) readFile(tr io.Reader, e *entry, head, buf []byte, h256 hash.Hash, opts StreamOptions, insp LayerInspector) error {
	n, err := io.ReadFull(tr, head[:min(int64(len(head)), e.size)])
	if err != nil {
		return fmt.Errorf("reading file data: %w", truncated(err))
	}
	head = head[:n]
	want := Skip
	if opts.Select != nil {
		want = opts.Select.Want(e.name, e.mode, e.size, head)
	}
	hashIt := opts.Digests == DigestAll || opts.Digests == DigestExecutables && Hashable(e.name, e.mode, head)
	var inspect io.WriteCloser
	if insp != nil {
		inspect = insp.File(e.name, e.mode, e.size, head)
	}
	if want == Skip && !hashIt && inspect == nil {
		return nil // tar.Reader discards the rest
	}
	var sinks []io.Writer
	if hashIt {
		h256.Reset()
		sinks = append(sinks, h256)
	}
	if inspect != nil {
		sinks = append(sinks, inspect)
	}
	start := ix.content.Size()
	if want != Skip {
		sinks = append(sinks, ix.content)
	}
	w := io.MultiWriter(sinks...)
	if _, err := w.Write(head); err != nil {
		return err
	}
	if _, err := io.CopyBuffer(w, tr, buf); err != nil {
		return fmt.Errorf("reading file data: %w", truncated(err))
	}
	if ix.content.Size()-start != e.size && want != Skip {
		return fmt.Errorf("tar is truncated: file data ends early")
	}
	if inspect != nil {
		if err := inspect.Close(); err != nil {
			return fmt.Errorf("inspecting file: %w", err)
		}
	}
	if hashIt {
		e.digest = "sha256:" + hex.EncodeToString(h256.Sum(nil))
	}
	if want == Skip {
		return nil
	}
	if want == Probe && !opts.Select.Keep(e.name, io.NewSectionReader(ix.content, start, e.size), e.size) {
		return ix.content.Truncate(start)
	}
	e.off = start
	return nil
}

func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("tar is truncated: %w", err)
	}
	return err
}

// BuildIndexed squashes layers read by IndexStream, bottom first. The view
// reads kept content from the Indexed layers, which the caller closes after
// the FS.
func BuildIndexed(layers []*Indexed) (*FS, error) {
	ls := make([]Layer, len(layers))
	entries := make([][]entry, len(layers))
	for i, ix := range layers {
		ls[i] = Layer{DiffID: ix.DiffID, Data: ix.data, Size: ix.Size, Notes: ix.Notes}
		entries[i] = ix.entries
	}
	return squash(ls, entries)
}

// headerEntry turns a tar header into an entry (without its data offset);
// skip is true for the root and for types that carry nothing a scanner reads.
func headerEntry(h *tar.Header) (e entry, skip bool, err error) {
	name, skip, err := cleanEntryName(h.Name)
	if err != nil || skip {
		return entry{}, skip, err
	}
	e = entry{name: name, typ: h.Typeflag, size: h.Size, linkname: h.Linkname}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeGNUSparse:
		e.typ, e.sparse = tar.TypeReg, true
	default:
		return entry{}, true, nil // global headers, unknown types
	}
	e.mode = entryMode(e.typ, h.FileInfo().Mode())
	for _, k := range []string{"GNU.sparse.map", "GNU.sparse.major"} {
		if _, ok := h.PAXRecords[k]; ok {
			e.sparse = true
		}
	}
	return e, false, nil
}
