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
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening root filesystem %q: %w", dir, err)
	}
	f := &FS{layers: []Layer{{DiffID: ""}}, root: newDir("/", 0), dir: root, dirPth: dir}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walking %q: %w", filepath.Join(dir, p), err)
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("walking %q: %w", filepath.Join(dir, p), err)
		}
		abs := "/" + p
		parent := f.lookupLiteral(path.Dir(abs))
		n := &Node{Path: abs, Mode: info.Mode(), Size: info.Size()}
		switch {
		case info.IsDir():
			n.children = map[string]*Node{}
		case info.Mode()&fs.ModeSymlink != 0:
			n.Size = 0
			if n.Linkname, err = root.Readlink(p); err != nil {
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
