package catalog

import (
	"bytes"
	"debug/elf"
	"io"
	"io/fs"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// SelectionKey names Selection in the layer results cache. Change it
// whenever what a cataloger reads changes, so that cached layers are read
// again.
const SelectionKey = "catalog.v1"

// Selection tells a streaming pass (image.Options.Select) which files the
// catalogers read, so it keeps only those: every path a file cataloger
// matches, the files read beside them (os-release, Debian copyright files,
// the rpm database directory), and ELF executables that carry Go build
// information or cargo-auditable data (sniffed from their content). A
// cataloger of an unknown kind makes it keep everything.
func Selection(catalogers []Cataloger) layerfs.Selector {
	if catalogers == nil {
		catalogers = All()
	}
	var s selection
	for _, c := range catalogers {
		switch c := c.(type) {
		case fileCataloger:
			s.matches = append(s.matches, c.match)
		case binaryCataloger:
			s.binaries = true
		case javaArchiveCataloger:
			s.matches = append(s.matches, isJavaArchive)
		default:
			s.all = true
		}
	}
	return s
}

type selection struct {
	matches  []func(string) bool
	binaries bool
	all      bool
}

// alsoRead are files catalogers read beside the ones they match.
func alsoRead(p string) bool {
	switch p {
	case "/etc/os-release", "/usr/lib/os-release", "/etc/alpine-release":
		return true
	}
	return strings.HasPrefix(p, "/usr/share/doc/") && strings.HasSuffix(p, "/copyright") ||
		strings.HasPrefix(p, "/var/lib/rpm/") || strings.HasPrefix(p, "/usr/lib/sysimage/rpm/")
}

func (s selection) Want(p string, mode fs.FileMode, size int64, head []byte) layerfs.Want {
	if s.all || alsoRead(p) {
		return layerfs.Keep
	}
	for _, m := range s.matches {
		if m(p) {
			return layerfs.Keep
		}
	}
	if s.binaries && mode.Perm()&0o111 != 0 && size > 64 && bytes.HasPrefix(head, elfMagic) {
		return layerfs.Probe
	}
	return layerfs.Skip
}

// Keep keeps an ELF executable only when the binary cataloger finds
// something in it.
func (s selection) Keep(_ string, r io.ReaderAt, _ int64) bool {
	ef, err := elf.NewFile(r)
	if err != nil {
		return false
	}
	defer ef.Close()
	return ef.Section(".go.buildinfo") != nil || ef.Section(".dep-v0") != nil
}
