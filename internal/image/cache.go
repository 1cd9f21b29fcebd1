package image

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// layerCache is the accounting of one cache directory
// (CACHE/layers/sha256): the layers in it, their last use, and the bytes
// reserved by layers being written. Every open image of this process that
// uses the directory shares it, so the server's workers together stay under
// the quota. Layers an open image reads are pinned and never evicted.
type layerCache struct {
	dir   string
	ext   string // ".tar" for layers, ".idx.zst" for streamed results
	quota int64

	mu      sync.Mutex
	loaded  bool
	entries map[string]*cacheEntry // by diffID hex
	used    int64                  // committed entries plus reservations
}

type cacheEntry struct {
	size int64
	last time.Time
	pins int
}

var (
	cachesMu sync.Mutex
	caches   = map[string]*layerCache{}
)

// stalePartial is how old a half-written layer of another process must be
// to be taken for the leftover of a killed run and removed.
const stalePartial = 10 * time.Minute

// cacheFor returns the shared accounting of dir with the given quota (the
// last caller's quota wins: one process has one configuration).
func cacheFor(dir, ext string, quota int64) *layerCache {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	cachesMu.Lock()
	defer cachesMu.Unlock()
	c := caches[dir]
	if c == nil {
		c = &layerCache{dir: dir, ext: ext, entries: map[string]*cacheEntry{}}
		caches[dir] = c
	}
	c.mu.Lock()
	c.quota = quota
	c.mu.Unlock()
	return c
}

func (c *layerCache) path(hex string) string { return filepath.Join(c.dir, hex+c.ext) }

// load reads what the directory holds once, and removes what killed runs
// left half-written.
func (c *layerCache) load() error {
	if c.loaded {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("creating layer cache %q: %w", c.dir, err)
	}
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("reading layer cache %q: %w", c.dir, err)
	}
	for _, de := range des {
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		name := de.Name()
		switch {
		case strings.HasPrefix(name, ".partial-"):
			if time.Since(fi.ModTime()) > stalePartial {
				os.Remove(filepath.Join(c.dir, name))
			}
		case strings.HasSuffix(name, c.ext):
			hex := strings.TrimSuffix(name, c.ext)
			c.entries[hex] = &cacheEntry{size: fi.Size(), last: fi.ModTime()}
			c.used += fi.Size()
		}
	}
	c.loaded = true
	return nil
}

// open returns the cached layer hex, pinned until the closer is closed, or
// ok false when it is not cached.
func (c *layerCache) open(hex string) (f *os.File, size int64, closer io.Closer, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return nil, 0, nil, false
	}
	f, err := os.Open(c.path(hex))
	if err != nil {
		if e := c.entries[hex]; e != nil && e.pins == 0 {
			c.used -= e.size
			delete(c.entries, hex)
		}
		return nil, 0, nil, false
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, false
	}
	e := c.entries[hex]
	if e == nil { // written by another process meanwhile
		e = &cacheEntry{size: fi.Size()}
		c.entries[hex] = e
		c.used += e.size
	}
	e.last, e.pins = time.Now(), e.pins+1
	os.Chtimes(f.Name(), e.last, e.last) // least recently used across runs too
	return f, fi.Size(), c.unpinner(hex, f), true
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func (c *layerCache) unpinner(hex string, f *os.File) io.Closer {
	var once sync.Once
	return closerFunc(func() error {
		err := f.Close()
		once.Do(func() {
			c.mu.Lock()
			if e := c.entries[hex]; e != nil && e.pins > 0 {
				e.pins--
			}
			c.mu.Unlock()
		})
		return err
	})
}

// reserve makes room for n more bytes, evicting the least recently used
// unpinned layers; it fails with ErrCacheFull when even that is not enough.
func (c *layerCache) reserve(n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return err
	}
	for c.used+n > c.quota {
		victim := ""
		for hex, e := range c.entries {
			if e.pins == 0 && (victim == "" || e.last.Before(c.entries[victim].last)) {
				victim = hex
			}
		}
		if victim == "" {
			return fmt.Errorf("%w: %d bytes in use by open images and layers being written, %d more asked, quota %d", ErrCacheFull, c.used, n, c.quota)
		}
		c.evict(victim)
	}
	c.used += n
	return nil
}

func (c *layerCache) evict(hex string) {
	e := c.entries[hex]
	os.Remove(c.path(hex))
	c.used -= e.size
	delete(c.entries, hex)
}

func (c *layerCache) release(n int64) {
	c.mu.Lock()
	c.used -= n
	c.mu.Unlock()
}

// commit stores the finished file tmp as layer hex; it turns the reserved
// bytes into the layer's size and pins the layer for the caller.
func (c *layerCache) commit(tmp *os.File, hex string, size, reserved int64) (io.Closer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.Rename(tmp.Name(), c.path(hex)); err != nil {
		c.used -= reserved
		return nil, fmt.Errorf("storing layer in cache: %w", err)
	}
	c.used += size - reserved
	if old := c.entries[hex]; old != nil { // a concurrent writer of the same layer
		c.used -= old.size
		old.size, old.pins, old.last = size, old.pins+1, time.Now()
	} else {
		c.entries[hex] = &cacheEntry{size: size, last: time.Now(), pins: 1}
	}
	return c.unpinner(hex, tmp), nil
}

// drop removes layer hex unless an open image still reads it.
func (c *layerCache) drop(hex string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[hex]; e != nil && e.pins == 0 {
		c.evict(hex)
	}
}

// reservingWriter writes a layer into the cache, reserving quota ahead of
// the bytes in chunks.
type reservingWriter struct {
	w                 io.Writer
	c                 *layerCache
	written, reserved int64
}

const reserveChunk = 1 << 20

func (r *reservingWriter) Write(p []byte) (int, error) {
	if need := r.written + int64(len(p)) - r.reserved; need > 0 {
		chunk := max(need, reserveChunk)
		if err := r.c.reserve(chunk); err != nil {
			return 0, err
		}
		r.reserved += chunk
	}
	n, err := r.w.Write(p)
	r.written += int64(n)
	return n, err
}
