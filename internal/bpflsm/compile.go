package bpflsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// Lister says which contents one container may run: Allows for execs,
// Maps for executable mappings (*allowlist.List is one).
type Lister interface {
	Allows(d allowlist.Digest) (string, bool)
	Maps(d allowlist.Digest) bool
}

var _ Lister = (*allowlist.List)(nil)

// MaxCompiled bounds the files one container's list may hold.
var MaxCompiled = 1 << 20

// Compiled is what Compile put in the kernel's map for one cgroup.
type Compiled struct {
	Files   []FileID // listed identities (Release removes them)
	Visited int      // candidate files opened and judged
	Refused int      // candidates whose content is not the image's
}

// Compile lists, for cgroup cg, every file under root whose content l
// allows: executables (any execute bit), and with mmap also every other ELF
// file the image holds (shared libraries, the ELF interpreter), which the
// mmap_file check needs. root is the container's root as the agent sees it
// (/proc/PID/root): files are listed by the identity the kernel will see
// through the container's own mount (for overlayfs, the overlay inode).
//
// Only files on root's own filesystem are listed (the container's /proc,
// /sys and bind mounts are not its image). Every file is opened inside
// root (openat2 with RESOLVE_IN_ROOT, no magic links), so a symlink the
// container plants cannot point the agent at a host file. Content is
// hashed through cache, so a file seen in another container of the same
// image is not read again.
//
// Call it before Watch: a cgroup watched with an empty list refuses
// everything.
func (e *Enforcer) Compile(ctx context.Context, cg uint64, root string, l Lister, cache *allowlist.DigestCache, mmap bool) (*Compiled, error) {
	out, err := walkAllowed(ctx, root, l, cache, mmap, func(id FileID) error { return e.Allow(cg, id) })
	if err != nil {
		_ = e.Release(cg, out)
		return nil, fmt.Errorf("compiling the list of cgroup %d from %q: %w", cg, root, err)
	}
	return out, nil
}

// walkAllowed finds the files under root whose content l allows (see
// Compile) and calls allow with each identity, stopping at its first
// error. What it listed is in the result even on error.
func walkAllowed(ctx context.Context, root string, l Lister, cache *allowlist.DigestCache, mmap bool, allow func(FileID) error) (*Compiled, error) {
	out := &Compiled{}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return out, fmt.Errorf("opening container root %q: %w", root, err)
	}
	defer unix.Close(rootFD)
	rfs, err := rootFSOf(rootFD)
	if err != nil {
		return out, fmt.Errorf("reading container root %q: %w", root, err)
	}
	// The agent's root is /proc/PID/root, a link: walked as a directory
	// (with a trailing slash), not as the link itself, which WalkDir would
	// report as one non-directory entry and list nothing under.
	walkRoot := strings.TrimSuffix(root, "/") + "/"
	err = filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == walkRoot {
				return err
			}
			return nil // a directory that went away or is unreadable: its files are not listed
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			if info, ierr := d.Info(); ierr == nil {
				if st, ok := info.Sys().(*unix.Stat_t); ok && st.Dev != rfs.dev {
					return filepath.SkipDir // another filesystem mounted in the container
				}
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, rerr := filepath.Rel(walkRoot, p)
		if rerr != nil {
			return nil
		}
		id, ok, lerr := judge(rootFD, rel, rfs, l, cache, mmap, out)
		if lerr != nil {
			return lerr
		}
		if !ok {
			return nil
		}
		if len(out.Files) >= MaxCompiled {
			return &allowlist.TooLargeError{What: fmt.Sprintf("container root %q with more listed files", root), Limit: MaxCompiled}
		}
		if aerr := allow(id); aerr != nil {
			return aerr
		}
		out.Files = append(out.Files, id)
		return nil
	})
	return out, err
}

var elfMagic = []byte{0x7f, 'E', 'L', 'F'}

// rootFS is the filesystem of a container's root: the device its
// directories report (for overlayfs, the overlay's own, which is the
// super block's device the LSM hooks see) and its mount.
type rootFS struct {
	dev   uint64 // st_dev of the root directory
	mnt   uint64 // mount id (statx), when the kernel reports one
	byMnt bool
}

func rootFSOf(fd int) (rootFS, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return rootFS{}, err
	}
	r := rootFS{dev: st.Dev}
	r.mnt, r.byMnt = mountID(fd)
	return r, nil
}

// mountID is the id of the mount fd is on (Linux 5.8 on); false when the
// kernel does not say.
func mountID(fd int) (uint64, bool) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, false
	}
	return stx.Mnt_id, true
}

// on tells whether the open file fd with stat st is on the root's own
// filesystem. An overlay whose layers are on different filesystems (and
// without xino) reports a per-layer device for its files, not its own, so
// the mount decides where the kernel says which it is.
func (r rootFS) on(fd int, st *unix.Stat_t) bool {
	if m, ok := mountID(fd); ok && r.byMnt {
		return m == r.mnt
	}
	return st.Dev == r.dev
}

// judge opens one candidate inside root and tells whether its content may
// run (or be mapped) in the container. Only errors of the kernel map stop
// the walk; a file that cannot be read is simply not listed.
func judge(rootFD int, rel string, rfs rootFS, l Lister, cache *allowlist.DigestCache, mmap bool, out *Compiled) (FileID, bool, error) {
	fd, err := unix.Openat2(rootFD, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return FileID{}, false, nil
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || !rfs.on(fd, &st) {
		return FileID{}, false, nil
	}
	exec := st.Mode&0o111 != 0
	if !exec {
		if !mmap {
			return FileID{}, false, nil
		}
		head := make([]byte, 4)
		if n, _ := io.ReadFull(io.NewSectionReader(f, 0, 4), head); n < 4 || string(head) != string(elfMagic) {
			return FileID{}, false, nil
		}
	}
	out.Visited++
	id, err := allowlist.IdentityOf(f)
	if err != nil {
		return FileID{}, false, nil
	}
	dg, id2, err := cache.Digest(f, id)
	if err != nil || id2 != id {
		return FileID{}, false, nil // changed while read: not listed (drift if run)
	}
	_, runs := l.Allows(dg)
	if !runs && !(mmap && l.Maps(dg)) {
		out.Refused++
		return FileID{}, false, nil
	}
	// The identity the hooks see: the inode number stat reports (overlayfs
	// keeps them stable and unique on one filesystem, or with xino) on the
	// root's device, which is the super block's (an overlay over several
	// filesystems reports a layer's device for its files instead).
	kst := st
	kst.Dev = rfs.dev
	return fileIDFromStat(&kst), true, nil
}

// Release removes what Compile listed for cg (when its container is gone).
func (e *Enforcer) Release(cg uint64, c *Compiled) error {
	var errs []error
	for _, f := range c.Files {
		if err := e.Forget(cg, f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
