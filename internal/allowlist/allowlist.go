package allowlist

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// MaxEntries is the largest file table accepted (a variable for tests).
var MaxEntries = 4 << 20

// Limits on what an allowlist is built from.
const (
	// MaxPath is the longest path accepted.
	MaxPath = 4096
	// maxHops bounds symlink resolution of the entrypoint.
	maxHops = 16
)

// Digest is a SHA-256 content digest.
type Digest [32]byte

// String is "sha256:HEX".
func (d Digest) String() string { return "sha256:" + hex.EncodeToString(d[:]) }

// ParseDigest reads "sha256:HEX" strictly.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return d, fmt.Errorf("parsing digest %q: want sha256: and 64 hex digits", s)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("parsing digest %q: %w", s, err)
	}
	return d, nil
}

// Config is the part of the image config the allowlist needs.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// List is what may run in containers of one image.
type List struct {
	// Image is the image's manifest digest.
	Image string
	// Source says where the list came from (the agent's word for it:
	// the server, a local inventory, the layers on the node).
	Source     string
	Entrypoint []string
	Cmd        []string
	files      map[Digest]string // content digest -> first image path with it
	// mapped holds the content of every image file with a digest (ELF
	// libraries and the ELF interpreter among them): what a watched
	// process may map executable (BPF-LSM's mmap checks).
	mapped map[Digest]struct{}
	// Libraries is true when the file table gave a digest to every file
	// that can be mapped executable (every ELF file and shared library), so
	// mappings can be judged without refusing a library the image holds.
	Libraries bool
}

// Maps reports whether content d is an image file (an executable, a shared
// library, the ELF interpreter): what may be mapped executable.
func (l *List) Maps(d Digest) bool {
	if _, ok := l.files[d]; ok {
		return true
	}
	_, ok := l.mapped[d]
	return ok
}

// Len is the number of distinct allowed contents.
func (l *List) Len() int { return len(l.files) }

// Allows reports whether content d may run, with an image path holding it.
func (l *List) Allows(d Digest) (string, bool) {
	p, ok := l.files[d]
	return p, ok
}

// MissingDigestsError says the file table lacks the content digest of an
// executable: the inventory was made without file digests, so the caller
// builds the list from the image's layers instead.
type MissingDigestsError struct{ Path string }

func (e *MissingDigestsError) Error() string {
	return fmt.Sprintf("the file table has no content digest for executable %q", e.Path)
}

// TooLargeError says an input is past a limit.
type TooLargeError struct {
	What  string
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s past the limit of %d", e.What, e.Limit)
}

// FromInventory builds the list from an inventory's file table: every
// regular file with an executable bit, plus the file the entrypoint (or,
// without one, cmd) names, resolved through PATH and symlinks.
func FromInventory(image string, files []sbom.File, cfg Config) (*List, error) {
	if len(files) > MaxEntries {
		return nil, &TooLargeError{What: fmt.Sprintf("file table of %d entries", len(files)), Limit: MaxEntries}
	}
	l := &List{Image: image, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, files: make(map[Digest]string),
		mapped: make(map[Digest]struct{}), Libraries: true}
	byPath := make(map[string]*sbom.File, len(files))
	for i := range files {
		f := &files[i]
		if len(f.Path) > MaxPath || !strings.HasPrefix(f.Path, "/") {
			return nil, fmt.Errorf("reading file table entry %.64q: not an absolute path of at most %d bytes", f.Path, MaxPath)
		}
		byPath[f.Path] = f
		if f.Type == "file" && !executable(f.Mode) {
			if err := l.addMapped(f); err != nil {
				return nil, err
			}
			continue
		}
		if f.Type != "file" {
			continue
		}
		if err := l.add(f); err != nil {
			return nil, err
		}
	}
	if argv0 := first(cfg.Entrypoint, cfg.Cmd); argv0 != "" {
		if f := resolve(byPath, argv0, cfg.Env); f != nil {
			if err := l.add(f); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// addMapped records a non-executable file's content as mappable; a shared
// library without a digest means mappings cannot be judged.
func (l *List) addMapped(f *sbom.File) error {
	if f.Digest == "" {
		if sharedLibrary(f.Path) {
			l.Libraries = false
		}
		return nil
	}
	d, err := ParseDigest(f.Digest)
	if err != nil {
		return fmt.Errorf("reading the digest of %q: %w", f.Path, err)
	}
	l.mapped[d] = struct{}{}
	return nil
}

// sharedLibrary tells a library by its name: *.so or *.so.N...
func sharedLibrary(p string) bool {
	b := path.Base(p)
	i := strings.Index(b, ".so")
	return i > 0 && (len(b) == i+3 || b[i+3] == '.')
}

func (l *List) add(f *sbom.File) error {
	if f.Digest == "" {
		return &MissingDigestsError{Path: f.Path}
	}
	d, err := ParseDigest(f.Digest)
	if err != nil {
		return fmt.Errorf("reading the digest of %q: %w", f.Path, err)
	}
	if _, ok := l.files[d]; !ok {
		l.files[d] = f.Path
	}
	return nil
}

// executable reads a file table mode ("0755") and tells whether any
// execute bit is set.
func executable(mode string) bool {
	var m uint32
	if _, err := fmt.Sscanf(mode, "%o", &m); err != nil {
		return false
	}
	return m&0o111 != 0
}

func first(entrypoint, cmd []string) string {
	if len(entrypoint) > 0 {
		return entrypoint[0]
	}
	if len(cmd) > 0 {
		return cmd[0]
	}
	return ""
}

// resolve finds the regular file argv0 names, as execvp would: through the
// image's PATH when it has no slash, following symlinks inside the image.
func resolve(byPath map[string]*sbom.File, argv0 string, env []string) *sbom.File {
	if strings.Contains(argv0, "/") {
		return follow(byPath, path.Join("/", argv0))
	}
	dirs := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			dirs = v
		}
	}
	for _, d := range strings.Split(dirs, ":") {
		if f := follow(byPath, path.Join("/", d, argv0)); f != nil {
			return f
		}
	}
	return nil
}

func follow(byPath map[string]*sbom.File, p string) *sbom.File {
	for range maxHops {
		f, ok := byPath[p]
		if !ok {
			return nil
		}
		switch f.Type {
		case "file":
			return f
		case "symlink":
			if strings.HasPrefix(f.Linkname, "/") {
				p = path.Clean(f.Linkname)
			} else {
				p = path.Join(path.Dir(p), f.Linkname)
			}
		default:
			return nil
		}
	}
	return nil
}

// errNotRegular is returned when an exec'd file is not a regular file.
var errNotRegular = errors.New("not a regular file")

// With returns a copy of l that also allows the contents of extra (content
// digest -> a path it ran from): a list refined by a learning window.
func (l *List) With(extra map[Digest]string) *List {
	n := &List{Image: l.Image, Source: l.Source, Entrypoint: l.Entrypoint, Cmd: l.Cmd, files: make(map[Digest]string, len(l.files)+len(extra)),
		mapped: l.mapped, Libraries: l.Libraries}
	for d, p := range l.files {
		n.files[d] = p
	}
	for d, p := range extra {
		if _, ok := n.files[d]; !ok {
			n.files[d] = p
		}
	}
	return n
}
