package layerfs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// FromDir builds the view of a plain root filesystem directory, as one layer.
// Symbolic links are recorded, never followed while walking, and files are
// later opened through os.Root, which refuses any path leading outside dir.
func FromDir(dir string) (*FS, error) {
	return FromDirFunc(dir, nil)
}

// FromDirFunc is FromDir leaving out what skip says (a directory skipped
// is not descended into); with skip set, an entry that cannot be read is
// left out rather than failing the walk (a live host's root changes while
// it is read). rel is the slash path under dir ("usr/bin/ls").
func FromDirFunc(dir string, skip func(rel string, info fs.FileInfo) bool) (*FS, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening root filesystem %q: %w", dir, err)
	}
	f := &FS{layers: []Layer{{DiffID: ""}}, root: newDir("/", 0), dir: root, dirPth: dir}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil && skip != nil && p != "." {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("walking %q: %w", filepath.Join(dir, p), err)
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil && skip != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("walking %q: %w", filepath.Join(dir, p), err)
		}
		if skip != nil && skip(p, info) {
			if info.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		abs := "/" + p
		parent := f.lookupLiteral(path.Dir(abs))
		n := &Node{Path: abs, Mode: info.Mode(), Size: info.Size()}
		switch {
		case info.IsDir():
			n.children = map[string]*Node{}
		case info.Mode()&fs.ModeSymlink != 0:
			n.Size = 0
			if n.Linkname, err = root.Readlink(p); err != nil && skip != nil {
				return nil
			} else if err != nil {
				return fmt.Errorf("reading link %q: %w", filepath.Join(dir, p), err)
			}
		}
		parent.children[path.Base(abs)] = n
		return nil
	})
	if err != nil {
		root.Close()
		return nil, err
	}
	return f, nil
}

// Close releases the directory handle of a directory source.
func (f *FS) Close() error {
	if f.dir != nil {
		return f.dir.Close()
	}
	return nil
}
