package layerfs

import (
	"archive/tar"
	"errors"
	"io/fs"
	"path"
	"strings"
)

// maxEntries bounds the entries of one layer (files, directories, links,
// whiteouts): each costs its index about 300 bytes, so a hostile layer of
// 16 million empty files (8 GiB of tar headers, under the layer size limit)
// would take some 5 GiB of memory. Past it the layer is refused with
// ErrTooManyEntries. A variable for tests.
var maxEntries = 1 << 21

// ErrTooManyEntries reports a layer of more than maxEntries entries.
var ErrTooManyEntries = errors.New("layer has too many entries")

type entry struct {
	name     string // clean, absolute
	typ      byte
	mode     fs.FileMode
	size     int64
	linkname string
	off      int64 // -1: content not kept (streaming pass)
	sparse   bool
	digest   string
}

// entryMode is an entry's mode with its kind taken from its tar type
// alone: mode bits that say otherwise (a regular file of mode 040755, a
// directory of mode 0100644) are a hostile tar's, and a node that is a
// directory by its mode but not by its type has no children to add to.
func entryMode(typ byte, mode fs.FileMode) fs.FileMode {
	m := mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch typ {
	case tar.TypeDir:
		m |= fs.ModeDir
	case tar.TypeSymlink:
		m |= fs.ModeSymlink
	case tar.TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case tar.TypeBlock:
		m |= fs.ModeDevice
	case tar.TypeFifo:
		m |= fs.ModeNamedPipe
	}
	return m
}

// cleanEntryName turns a tar entry name into a clean absolute path. It
// refuses absolute names and names that climb out of the root; skip is true
// for the root directory itself.
func cleanEntryName(name string) (clean string, skip bool, err error) {
	if strings.HasPrefix(name, "/") {
		return "", false, errors.New("absolute path in tar entry")
	}
	rel := path.Clean(name)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false, errors.New("path climbs out of the image root with \"..\"")
	}
	if rel == "." {
		return "", true, nil
	}
	return "/" + rel, false, nil
}
