package layerfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

var (
	// ErrLoop reports a chain of symbolic links that does not end.
	ErrLoop = errors.New("too many levels of symbolic links")
	// ErrOutsideRoot reports a symbolic link that climbs above the image root.
	ErrOutsideRoot = errors.New("symbolic link points outside the image root")
	// ErrSparse reports a GNU sparse tar entry, whose bytes are not read.
	ErrSparse = errors.New("sparse tar entries are not supported")
)

// maxHops is the number of symbolic links followed before ErrLoop, as Linux's
// MAXSYMLINKS.
const maxHops = 40

// Layer is one layer's uncompressed tar.
type Layer struct {
	// DiffID names the layer (sha256 of the uncompressed tar).
	DiffID string
	// Data reads the tar at any offset.
	Data io.ReaderAt
	// Size is the length of the tar in bytes.
	Size int64
	// Notes are what a streaming pass's Inspector concluded about the
	// layer (BuildIndexed); nil when it was not inspected.
	Notes []byte
}

// EntryError is a problem with one entry of one layer.
type EntryError struct {
	Layer string // diffID, or the directory for a directory source
	Entry string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("layer %s: entry %q: %v", e.Layer, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Node is one file, directory, link or device in the squashed view.
type Node struct {
	Path     string
	Mode     fs.FileMode // type bits and permissions
	Size     int64
	Linkname string // target of a symbolic link
	// Layer is the index of the layer that last wrote this path.
	Layer int
	// Digest is "sha256:HEX" of a regular file's content, when hashed.
	Digest string

	dataLayer int   // layer that holds the bytes (differs for hard links)
	off       int64 // offset of the bytes in that layer's tar
	sparse    bool
	children  map[string]*Node
	prev      *Node // the version of this path in a lower layer
}

// IsDir reports whether n is a directory.
func (n *Node) IsDir() bool { return n.Mode.IsDir() }

// IsRegular reports whether n is a regular file.
func (n *Node) IsRegular() bool { return n.Mode.IsRegular() }

// IsSymlink reports whether n is a symbolic link.
func (n *Node) IsSymlink() bool { return n.Mode&fs.ModeSymlink != 0 }

// Prev returns the version of the same path that a lower layer wrote and
// this one replaced, or nil.
func (n *Node) Prev() *Node { return n.prev }

// FS is the squashed, read-only view of an image's layers.
type FS struct {
	layers []Layer
	root   *Node
	dir    *os.Root // set for directory sources
	dirPth string   // the directory of a directory source, for messages
	files  []*Node  // every node but the root, sorted by path; built lazily
	// entries are each layer's regular files as the layer wrote them, kept
	// for readers that must see what later layers deleted (secrets).
	entries [][]entry
}

// Build indexes the layers (in parallel) and squashes them bottom up.
func Build(ctx context.Context, layers []Layer) (*FS, error) {
	entries := make([][]entry, len(layers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, l := range layers {
		g.Go(func() (err error) {
			defer Recovered(&err, "indexing layer "+l.DiffID)
			if err := ctx.Err(); err != nil {
				return err
			}
			e, err := indexTar(l)
			entries[i] = e
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return squash(layers, entries)
}

// squash applies each layer's entries bottom up.
func squash(layers []Layer, entries [][]entry) (*FS, error) {
	f := &FS{layers: layers, root: newDir("/", 0), entries: entries}
	for i := range layers {
		if err := f.apply(i, entries[i]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// entry is one tar header with the offset of its data.
func indexTar(l Layer) ([]entry, error) {
	sr := newReadahead(l.Data, l.Size)
	tr := tar.NewReader(sr)
	var out []entry
	last := "(start of layer)"
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("tar is truncated: %w", err)
			}
			return nil, &EntryError{Layer: l.DiffID, Entry: last, Err: fmt.Errorf("reading tar header after this entry: %w", err)}
		}
		last = h.Name
		off, _ := sr.Seek(0, io.SeekCurrent)
		e, skip, err := headerEntry(h)
		if err != nil {
			return nil, &EntryError{Layer: l.DiffID, Entry: h.Name, Err: err}
		}
		if skip {
			continue
		}
		if len(out) >= maxEntries {
			return nil, &EntryError{Layer: l.DiffID, Entry: h.Name, Err: fmt.Errorf("%w: more than %d", ErrTooManyEntries, maxEntries)}
		}
		e.off = off
		if e.typ == tar.TypeReg && off+h.Size > l.Size && !e.sparse {
			return nil, &EntryError{Layer: l.DiffID, Entry: h.Name, Err: fmt.Errorf("tar is truncated: file data (%d bytes at offset %d) runs past the end of the layer (%d bytes)", h.Size, off, l.Size)}
		}
		out = append(out, e)
	}
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// apply lays one layer's entries over the view of the layers below it:
// whiteouts first (they only hide lower layers), then additions in tar order.
func (f *FS) apply(layer int, entries []entry) error {
	diffID := f.layers[layer].DiffID
	for _, e := range entries {
		dir, base := path.Split(e.name)
		if !strings.HasPrefix(base, whiteoutPrefix) {
			continue
		}
		parent := f.lookupLiteral(path.Clean(dir))
		if parent == nil || !parent.IsDir() {
			continue // whiting out what does not exist is allowed
		}
		switch {
		case base == opaqueMarker:
			clear(parent.children)
		case strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix):
			// other AUFS metadata (.wh..wh.plnk, ...): not a path
		default:
			delete(parent.children, strings.TrimPrefix(base, whiteoutPrefix))
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(path.Base(e.name), whiteoutPrefix) {
			continue
		}
		if err := f.add(layer, e); err != nil {
			return &EntryError{Layer: diffID, Entry: strings.TrimPrefix(e.name, "/"), Err: err}
		}
	}
	return nil
}

func (f *FS) add(layer int, e entry) error {
	dir, base := path.Split(e.name)
	parent := f.mkdirAll(path.Clean(dir), layer)
	old := parent.children[base]
	n := &Node{Path: e.name, Mode: e.mode, Size: e.size, Linkname: e.linkname, Layer: layer, Digest: e.digest, dataLayer: layer, off: e.off, sparse: e.sparse}
	switch e.typ {
	case tar.TypeDir:
		if old != nil && old.IsDir() {
			old.Mode, old.Layer = e.mode, layer
			return nil
		}
		n.children = map[string]*Node{}
	case tar.TypeLink:
		target := f.lookupLiteral(path.Clean("/" + e.linkname))
		if target == nil {
			return fmt.Errorf("hard link to missing target %q", e.linkname)
		}
		if !target.IsRegular() {
			return fmt.Errorf("hard link to %q, which is not a regular file", e.linkname)
		}
		n.Mode, n.Size, n.Linkname = target.Mode, target.Size, ""
		n.dataLayer, n.off, n.sparse, n.Digest = target.dataLayer, target.off, target.sparse, target.Digest
	case tar.TypeSymlink:
		n.Size = 0
	}
	if old != nil && old.IsRegular() && n.IsRegular() {
		n.prev = old
	}
	parent.children[base] = n
	return nil
}

func newDir(p string, layer int) *Node {
	return &Node{Path: p, Mode: fs.ModeDir | 0o755, Layer: layer, children: map[string]*Node{}}
}

// mkdirAll returns the directory node at p, creating missing (implicit)
// directories. A non-directory in the way is replaced, as an overlay mount
// shows an upper directory over a lower file.
func (f *FS) mkdirAll(p string, layer int) *Node {
	cur := f.root
	if p == "/" {
		return cur
	}
	for _, c := range strings.Split(p[1:], "/") {
		next := cur.children[c]
		if next == nil || !next.IsDir() {
			next = newDir(path.Join(cur.Path, c), layer)
			cur.children[c] = next
		}
		cur = next
	}
	return cur
}

// lookupLiteral finds a path without following any symbolic link.
func (f *FS) lookupLiteral(p string) *Node {
	cur := f.root
	if p == "/" {
		return cur
	}
	for _, c := range strings.Split(p[1:], "/") {
		if cur.children == nil {
			return nil
		}
		cur = cur.children[c]
		if cur == nil {
			return nil
		}
	}
	return cur
}

// Layers returns the layers the view was built from, bottom first.
func (f *FS) Layers() []Layer { return f.layers }

// LayerID returns the diffID of layer i ("" when out of range).
func (f *FS) LayerID(i int) string {
	if i < 0 || i >= len(f.layers) {
		return ""
	}
	return f.layers[i].DiffID
}

// Files returns every node of the view except the root, sorted by path.
// Directories reached through symbolic links are not walked twice.
func (f *FS) Files() []*Node {
	if f.files == nil {
		var walk func(*Node)
		walk = func(d *Node) {
			names := make([]string, 0, len(d.children))
			for name := range d.children {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				c := d.children[name]
				f.files = append(f.files, c)
				if c.IsDir() {
					walk(c)
				}
			}
		}
		f.files = []*Node{}
		walk(f.root)
	}
	return f.files
}

// Lstat returns the node at p; a final symbolic link is not followed, but
// links in the directories leading to it are.
func (f *FS) Lstat(p string) (*Node, error) { return f.resolve(p, false) }

// Stat returns the node at p, following symbolic links inside the root.
func (f *FS) Stat(p string) (*Node, error) { return f.resolve(p, true) }

func (f *FS) resolve(p string, followFinal bool) (*Node, error) {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	todo := strings.Split(path.Clean(p)[1:], "/")
	if todo[0] == "" {
		return f.root, nil
	}
	stack := []*Node{f.root} // directories from the root down to the current one
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 1 {
				return nil, f.pathErr(p, cur, ErrOutsideRoot)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		next := cur.children[c]
		if next == nil {
			return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
		}
		if next.IsSymlink() && (len(todo) > 0 || followFinal) {
			hops++
			if hops > maxHops {
				return nil, f.pathErr(p, next, ErrLoop)
			}
			target := next.Linkname
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if len(todo) > 0 && !next.IsDir() {
			return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
		}
		stack = append(stack, next)
	}
	return stack[len(stack)-1], nil
}

func (f *FS) pathErr(p string, n *Node, err error) error {
	layer := f.LayerID(n.Layer)
	if f.dir != nil {
		layer = f.dirPth
	}
	return &EntryError{Layer: layer, Entry: strings.TrimPrefix(p, "/"), Err: err}
}

// File is an open regular file of the view.
type File struct {
	*io.SectionReader
	closer io.Closer
}

// Close releases the file.
func (f *File) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// Open opens a regular file node for reading.
func (f *FS) Open(n *Node) (*File, error) {
	if !n.IsRegular() {
		return nil, f.pathErr(n.Path, n, errors.New("not a regular file"))
	}
	if f.dir != nil {
		h, err := f.dir.Open(strings.TrimPrefix(n.Path, "/"))
		if err != nil {
			return nil, f.pathErr(n.Path, n, err)
		}
		return &File{SectionReader: io.NewSectionReader(h, 0, n.Size), closer: h}, nil
	}
	if n.sparse {
		return nil, f.pathErr(n.Path, n, ErrSparse)
	}
	if n.off < 0 {
		return nil, f.pathErr(n.Path, n, ErrNotRetained)
	}
	return &File{SectionReader: io.NewSectionReader(f.layers[n.dataLayer].Data, n.off, n.Size)}, nil
}

// LayerFile is a regular file as one layer wrote it, whether or not a later
// layer replaced or deleted it.
type LayerFile struct {
	Path  string
	Size  int64
	Mode  fs.FileMode
	Layer int

	off    int64
	sparse bool
}

// LayerFiles lists the regular files layer i wrote (not its whiteout
// markers), in tar order. For a
// directory source it is every regular file of the tree.
func (f *FS) LayerFiles(i int) []LayerFile {
	if f.dir != nil {
		var out []LayerFile
		for _, n := range f.Files() {
			if n.IsRegular() {
				out = append(out, LayerFile{Path: n.Path, Size: n.Size, Mode: n.Mode})
			}
		}
		return out
	}
	if i < 0 || i >= len(f.entries) {
		return nil
	}
	var out []LayerFile
	for _, e := range f.entries[i] {
		if e.typ == tar.TypeReg && !strings.HasPrefix(path.Base(e.name), whiteoutPrefix) {
			out = append(out, LayerFile{Path: e.name, Size: e.size, Mode: e.mode, Layer: i, off: e.off, sparse: e.sparse})
		}
	}
	return out
}

// OpenLayerFile opens a file as its layer wrote it.
func (f *FS) OpenLayerFile(lf LayerFile) (*File, error) {
	if f.dir != nil {
		n, err := f.Lstat(lf.Path)
		if err != nil {
			return nil, err
		}
		return f.Open(n)
	}
	if lf.sparse || lf.off < 0 {
		err := ErrSparse
		if !lf.sparse {
			err = ErrNotRetained
		}
		return nil, &EntryError{Layer: f.LayerID(lf.Layer), Entry: strings.TrimPrefix(lf.Path, "/"), Err: err}
	}
	return &File{SectionReader: io.NewSectionReader(f.layers[lf.Layer].Data, lf.off, lf.Size)}, nil
}

// ErrTooLarge reports a file over the size a reader was willing to take.
var ErrTooLarge = errors.New("file is larger than the configured limit")

// ReadFile follows symbolic links and reads the whole file at p, refusing
// files larger than max bytes.
func (f *FS) ReadFile(p string, max int64) ([]byte, *Node, error) {
	n, err := f.Stat(p)
	if err != nil {
		return nil, nil, err
	}
	b, err := f.ReadNode(n, max)
	return b, n, err
}

// ReadNode reads a regular file node, refusing files over max bytes.
func (f *FS) ReadNode(n *Node, max int64) ([]byte, error) {
	if n.Size > max {
		return nil, f.pathErr(n.Path, n, fmt.Errorf("%w (%d > %d bytes)", ErrTooLarge, n.Size, max))
	}
	r, err := f.Open(n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, f.pathErr(n.Path, n, fmt.Errorf("reading: %w", err))
	}
	return b, nil
}
