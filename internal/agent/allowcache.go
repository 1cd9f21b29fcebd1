package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// The disk cache of the server's allowlists (--allowlist-cache-dir) is
// taken at a restart as the server's word: a file there decides what runs
// in every container of its digest, the server up or down. So the agent
// uses the cache only in a directory its own user owns and no one else may
// write, never a symlink, opened once and then worked in by descriptor (a
// rename of a parent cannot swap it underneath); it reads a file there only
// when it is regular, the agent user's and writable by no one else, never
// through a symlink, at most maxAllowReply bytes; and it writes under a
// fresh name (O_EXCL: a name planted in advance is not followed), mode
// 0600, then renames. A cache that fails the check is not used and is said
// in the log at each use: the agent asks the server, else makes the list on
// the node. What stays: whoever can write as the agent's user (root) can
// write the cache as it can everything else the agent trusts; a disk copy
// carries no signature of the server's (TestAllowlistCacheTrust).

// openCacheDir opens the cache directory, made if missing, and checks it.
func openCacheDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making the allowlist cache %q: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the allowlist cache %q: %w", dir, err)
	}
	if err := ownOnly(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the allowlist cache %q: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// ownOnly checks that the file open at fd is the agent's user's and that
// no one else may write it.
func ownOnly(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("reading its owner: %w", err)
	}
	if euid := os.Geteuid(); st.Uid != uint32(euid) {
		return fmt.Errorf("owned by uid %d, not the agent's %d", st.Uid, euid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("mode %04o: others may write it", st.Mode&0o7777)
	}
	return nil
}

// cachedAllowlist reads the disk copy of the server's answer for digest;
// nil when there is none, it is not to be trusted (logged) or it does not
// check (it is then removed).
func (a *Agent) cachedAllowlist(digest string) *agentproto.Allowlist {
	name := allowlistName(digest)
	if a.cfg.AllowlistCache == "" || name == "" {
		return nil
	}
	d, err := openCacheDir(a.cfg.AllowlistCache)
	if err != nil {
		a.log.Error("the allowlist cache is not used", "error", err.Error())
		return nil
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		a.log.Error("a cached allowlist is not used", "file", name, "error", err.Error())
		return nil
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err = unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = errors.New("not a regular file")
	}
	if err == nil {
		err = ownOnly(fd)
	}
	var b []byte
	if err == nil {
		b, err = readAtMost(f, nil, maxAllowReply+1)
	}
	if err == nil && len(b) > maxAllowReply {
		err = fmt.Errorf("more than %d bytes", maxAllowReply)
	}
	if err != nil {
		a.log.Error("a cached allowlist is not used", "file", name, "error", err.Error())
		return nil
	}
	var ans agentproto.Allowlist
	if err := json.Unmarshal(b, &ans); err != nil || ans.Validate(digest) != nil {
		a.log.Warn("dropping a damaged cached allowlist", "file", name)
		_ = unix.Unlinkat(int(d.Fd()), name, 0)
		return nil
	}
	return &ans
}

// keepAllowlist writes the server's answer for digest to the disk cache.
func (a *Agent) keepAllowlist(digest string, ans *agentproto.Allowlist) {
	name := allowlistName(digest)
	if a.cfg.AllowlistCache == "" || name == "" {
		return
	}
	b, _ := json.Marshal(ans)
	d, err := openCacheDir(a.cfg.AllowlistCache)
	if err == nil {
		err = writeAt(int(d.Fd()), name, b)
		d.Close()
	}
	if err != nil {
		a.log.Warn("caching the server's allowlist on disk", "image", digest, "error", err.Error())
	}
}

// writeAt writes b to name in directory dirfd: to a fresh file (mode 0600,
// never an existing name or a symlink) renamed over name.
func writeAt(dirfd int, name string, b []byte) error {
	tmp := name + ".tmp-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("writing %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("writing %q: %w", name, err)
	}
	return nil
}

// allowlistName is the cache's file name of digest; "" for a name that is
// not a digest (never a path from an unchecked name).
func allowlistName(digest string) string {
	if !agentproto.ValidDigest(digest) {
		return ""
	}
	return strings.TrimPrefix(digest, "sha256:") + ".json"
}
