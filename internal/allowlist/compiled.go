package allowlist

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// MaxHashSize is the largest file hashed at exec time. A bigger file is an
// error the caller decides on (prevent refuses it).
const MaxHashSize = 1 << 30

// Identity names one version of one file: a write changes its change time,
// so a modified file gets a new identity. Kernels since 6.13 hand out
// fine-grained change times once a file's times were queried, so two
// writes inside one clock tick still differ.
type Identity struct {
	Dev, Ino     uint64
	Ctime, Mtime unix.Timespec
	Size         int64
}

// IdentityOf reads f's identity.
func IdentityOf(f *os.File) (Identity, error) {
	id, err := IdentityOfFd(int(f.Fd()))
	if err != nil {
		return Identity{}, fmt.Errorf("reading the identity of %q: %w", f.Name(), err)
	}
	return id, nil
}

// IdentityOfFd reads the identity of the file open at fd: one fstat(2),
// no allocation on success (the exec hot path).
func IdentityOfFd(fd int) (Identity, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Identity{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Identity{}, errNotRegular
	}
	return Identity{Dev: st.Dev, Ino: st.Ino, Ctime: st.Ctim, Mtime: st.Mtim, Size: st.Size}, nil
}

// DigestCache maps identities to content digests, shared by every container
// on a node. It is bounded: past max entries it starts over.
type DigestCache struct {
	mu     sync.Mutex
	m      map[Identity]Digest
	max    int
	hashed atomic.Int64 // files hashed (cache misses)
}

// Hashed counts the files hashed (cache misses); safe while others hash.
func (c *DigestCache) Hashed() int64 { return c.hashed.Load() }

// NewDigestCache makes a cache of at most max entries.
func NewDigestCache(max int) *DigestCache {
	return &DigestCache{m: make(map[Identity]Digest), max: max}
}

// Digest returns the content digest of f, whose identity is id: from the
// cache, or by hashing f (pread, so f's offset does not matter). A file that
// changed while it was hashed is hashed again, at most three times; the
// identity returned is the one the digest belongs to.
func (c *DigestCache) Digest(f *os.File, id Identity) (Digest, Identity, error) {
	c.mu.Lock()
	d, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return d, id, nil
	}
	if id.Size > MaxHashSize {
		return d, id, &TooLargeError{What: fmt.Sprintf("executable %q of %d bytes", f.Name(), id.Size), Limit: MaxHashSize}
	}
	for range 3 {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, id.Size+1)); err != nil {
			return d, id, fmt.Errorf("hashing %q: %w", f.Name(), err)
		}
		after, err := IdentityOf(f)
		if err != nil {
			return d, id, err
		}
		h.Sum(d[:0])
		if after != id {
			id = after // changed under us: hash the new version
			continue
		}
		c.mu.Lock()
		c.hashed.Add(1)
		if len(c.m) >= c.max {
			clear(c.m)
		}
		c.m[id] = d
		c.mu.Unlock()
		return d, id, nil
	}
	return d, id, fmt.Errorf("hashing %q: the file kept changing", f.Name())
}

// Compiled is a List compiled for one container.
type Compiled struct {
	List     *List
	mu       sync.Mutex
	verdicts map[Identity]Decision
	max      int
}

// Compile prepares l for one container; at most max identities are
// remembered.
func Compile(l *List, max int) *Compiled {
	return &Compiled{List: l, verdicts: make(map[Identity]Decision), max: max}
}

// Decision is the allowlist's answer for one file.
type Decision struct {
	Allowed bool
	Digest  Digest
	// ImagePath is an image path with the same content, when allowed.
	ImagePath string
	// Cached is true when the identity was seen before.
	Cached bool
}

// Lookup returns the decision on an identity seen before, without reading
// the file.
func (c *Compiled) Lookup(id Identity) (Decision, bool) {
	c.mu.Lock()
	d, ok := c.verdicts[id]
	c.mu.Unlock()
	d.Cached = ok
	return d, ok
}

// Check decides on f, the file being executed.
func (c *Compiled) Check(f *os.File, cache *DigestCache) (Decision, error) {
	id, err := IdentityOf(f)
	if err != nil {
		return Decision{}, err
	}
	if d, ok := c.Lookup(id); ok {
		return d, nil
	}
	dg, id, err := cache.Digest(f, id)
	if err != nil {
		return Decision{}, err
	}
	p, allowed := c.List.Allows(dg)
	d := Decision{Allowed: allowed, Digest: dg, ImagePath: p}
	c.mu.Lock()
	if len(c.verdicts) >= c.max {
		clear(c.verdicts)
	}
	c.verdicts[id] = d
	c.mu.Unlock()
	return d, nil
}
