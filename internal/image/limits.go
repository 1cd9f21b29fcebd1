package image

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// Default limits against hostile layers. They are sized for a small server
// (2 cores, 24 GiB of disk or memory): no image can make Bulwark write more
// than DefaultCacheMaxSize to its cache or decompress more than
// DefaultMaxImageSize for one image, and a gzip or zstd bomb is stopped
// after ratioSlack bytes at most DefaultMaxRatio times its compressed size.
const (
	DefaultMaxLayerSize = 8 << 30
	DefaultMaxImageSize = 10 << 30
	DefaultCacheMaxSize = 10 << 30
	DefaultMaxRatio     = 100
)

// ratioSlack is what any compressed stream may decompress to before the
// compression ratio is judged: a tiny layer of empty files or tar padding
// compresses far better than 100:1 without being a bomb.
const ratioSlack = 16 << 20

// Typed refusals; each wraps into an error that names the layer (and the
// image) and the flag that sets the limit.
var (
	// ErrLayerTooLarge reports a layer whose uncompressed size passes the limit.
	ErrLayerTooLarge = errors.New("uncompressed layer is larger than the limit (--max-layer-size)")
	// ErrImageTooLarge reports an image whose layers together pass the limit.
	ErrImageTooLarge = errors.New("uncompressed image is larger than the limit (--max-image-size)")
	// ErrCompressionRatio reports a layer that decompresses to more than
	// the allowed multiple of its compressed size: a decompression bomb.
	ErrCompressionRatio = errors.New("layer decompresses beyond the compression-ratio limit (--max-compression-ratio): a decompression bomb")
	// ErrCacheFull reports a layer that does not fit in the cache quota even
	// after evicting every layer no open image uses.
	ErrCacheFull = errors.New("layer cache quota is full (--cache-max-size)")
)

// Limits bound what one image may cost. Zero fields take the defaults; a
// negative field switches that limit off.
type Limits struct {
	// MaxLayerSize bounds the uncompressed bytes of one layer.
	MaxLayerSize int64
	// MaxImageSize bounds the uncompressed bytes of all layers of one image.
	MaxImageSize int64
	// MaxRatio bounds uncompressed/compressed bytes of a compressed layer,
	// judged once a layer has decompressed to more than 16 MiB.
	MaxRatio int64
	// CacheMaxSize bounds the bytes the layer cache holds on disk, layers
	// being written included; least recently used layers are evicted.
	CacheMaxSize int64
}

func (l *Limits) fill() {
	def := func(v *int64, d int64) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 1<<63 - 1
		}
	}
	def(&l.MaxLayerSize, DefaultMaxLayerSize)
	def(&l.MaxImageSize, DefaultMaxImageSize)
	def(&l.MaxRatio, DefaultMaxRatio)
	def(&l.CacheMaxSize, DefaultCacheMaxSize)
}

// imageBudget counts the uncompressed bytes of one image across its layers,
// which are read in parallel.
type imageBudget struct {
	max  int64
	used atomic.Int64
}

// take charges n bytes to the image, failing once the total passes max.
func (b *imageBudget) take(n int64) error {
	if total := b.used.Add(n); total > b.max {
		return fmt.Errorf("%w: more than %d bytes", ErrImageTooLarge, b.max)
	}
	return nil
}

// countingSource counts the compressed bytes read from a layer stream.
type countingSource struct {
	r io.Reader
	n int64
}

func (c *countingSource) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// guard is the decompressed side of one layer stream: every chunk is
// charged to the layer limit, the image budget and, for a compressed
// stream, the ratio limit, before it is passed on. It is the one place the
// three limits are enforced, for the cache and the streaming pass alike.
type guard struct {
	lim        *Limits
	image      *imageBudget
	compressed *countingSource // nil for an uncompressed stream
	n          int64
}

func (g *guard) charge(n int) error {
	g.n += int64(n)
	if g.n > g.lim.MaxLayerSize {
		return fmt.Errorf("%w: more than %d bytes", ErrLayerTooLarge, g.lim.MaxLayerSize)
	}
	if g.compressed != nil && g.n > ratioSlack && g.n/g.lim.MaxRatio > max(g.compressed.n, 1) {
		return fmt.Errorf("%w: %d bytes from %d compressed, more than %d:1", ErrCompressionRatio, g.n, g.compressed.n, g.lim.MaxRatio)
	}
	if g.image != nil {
		return g.image.take(int64(n))
	}
	return nil
}

// guardedReader passes reads through a guard.
type guardedReader struct {
	r io.Reader
	g *guard
}

func (r *guardedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		if gerr := r.g.charge(n); gerr != nil {
			return 0, gerr // the chunk that passes a limit is not handed on
		}
	}
	return n, err
}
