package bpflsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
)

// ErrNotReported is returned by ReportedContent when the file found under
// root is not the one the kernel judged (another inode, or changed since).
var ErrNotReported = errors.New("not the file the kernel reported")

// ReportedContent hashes the file an exec report names, opened inside root
// (the reporting process's root, /proc/TGID/root, or, once that process
// has exited, its container's): the path is resolved in the root
// (openat2 RESOLVE_IN_ROOT, no magic links), so a symlink the container
// planted cannot point the agent at a host file, and the file must be the
// one the kernel judged (device as Compile lists it, inode, change time),
// so a file renamed over it or written since is not what gets learned.
// Mapping reports carry only a file name: they are refused here.
func ReportedContent(root string, ev Event, cache *allowlist.DigestCache) (allowlist.Digest, error) {
	if ev.Hook != HookExec || !strings.HasPrefix(ev.Path, "/") {
		return allowlist.Digest{}, fmt.Errorf("hashing the reported file %q: %w (no absolute exec path)", ev.Path, ErrNotReported)
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return allowlist.Digest{}, fmt.Errorf("opening root %q: %w", root, err)
	}
	defer unix.Close(rootFD)
	rfs, err := rootFSOf(rootFD)
	if err != nil {
		return allowlist.Digest{}, fmt.Errorf("reading root %q: %w", root, err)
	}
	fd, err := unix.Openat2(rootFD, ev.Path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return allowlist.Digest{}, fmt.Errorf("opening the reported file %q in %q: %w", ev.Path, root, err)
	}
	f := os.NewFile(uintptr(fd), ev.Path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return allowlist.Digest{}, fmt.Errorf("reading the reported file %q: %w", ev.Path, err)
	}
	kst := st
	kst.Dev = rfs.dev
	if !rfs.on(fd, &st) || fileIDFromStat(&kst) != ev.File {
		return allowlist.Digest{}, fmt.Errorf("hashing the reported file %q in %q: %w", ev.Path, root, ErrNotReported)
	}
	id, err := allowlist.IdentityOf(f)
	if err != nil {
		return allowlist.Digest{}, err
	}
	d, id2, err := cache.Digest(f, id)
	if err != nil {
		return allowlist.Digest{}, fmt.Errorf("hashing the reported file %q: %w", ev.Path, err)
	}
	if id2 != id {
		return allowlist.Digest{}, fmt.Errorf("hashing the reported file %q: %w (written while hashed)", ev.Path, ErrNotReported)
	}
	return d, nil
}

// Relist compiles cg's list again from l (a list that grew: a learning
// window was locked) and watches cg in mode m; what old listed and l no
// longer does is removed after the new entries are in and the mode is
// set, so a file listed by both is never missing. The kernel's map is
// keyed by inode, not change time: an old entry whose inode is listed
// again (with the change time it has now) is kept, not forgotten.
func (e *Enforcer) Relist(ctx context.Context, cg uint64, root string, l Lister, cache *allowlist.DigestCache, mmap bool, m Mode, old *Compiled) (*Compiled, error) {
	c, err := e.Compile(ctx, cg, root, l, cache, mmap)
	if err != nil {
		return nil, err
	}
	if err := e.Watch(cg, m, mmap); err != nil {
		return c, err
	}
	if old == nil {
		return c, nil
	}
	type inode struct {
		dev uint32
		ino uint64
	}
	keep := make(map[inode]bool, len(c.Files))
	for _, f := range c.Files {
		keep[inode{f.Dev, f.Ino}] = true
	}
	var errs []error
	for _, f := range old.Files {
		if !keep[inode{f.Dev, f.Ino}] {
			errs = append(errs, e.Forget(cg, f))
		}
	}
	return c, errors.Join(errs...)
}
