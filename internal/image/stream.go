package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

// Stats tell how an image's layers were read.
type Stats struct {
	// LayersStreamed were decompressed in this open (one streaming pass).
	LayersStreamed int
	// LayersFromCache came from the results cache: not downloaded, not
	// decompressed.
	LayersFromCache int
	// LayersInPlace were uncompressed and read where they are.
	LayersInPlace int
}

// streamCounters are a loader's Stats, counted from parallel layers.
type streamCounters struct{ streamed, cached, inPlace atomic.Int64 }

func (c *streamCounters) stats() Stats {
	return Stats{LayersStreamed: int(c.streamed.Load()), LayersFromCache: int(c.cached.Load()), LayersInPlace: int(c.inPlace.Load())}
}

func (ld *loader) streamOpts() layerfs.StreamOptions {
	return layerfs.StreamOptions{Select: ld.opts.Select, Digests: ld.opts.Digests, TempDir: ld.opts.CacheDir, Inspect: ld.opts.Inspect,
		MaxLayerSize: ld.opts.Limits.MaxLayerSize}
}

// resultKey names a layer's results: the diffID, the selection (with the
// inspector), the digest mode and the encoding, which all change what is
// stored.
func (ld *loader) resultKey(diffID v1.Hash) string {
	sel := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' {
			return r
		}
		return '_'
	}, ld.opts.SelectKey)
	return fmt.Sprintf("%s-%s-d%d-v%d", diffID.Hex, sel, ld.opts.Digests, layerfs.PersistVersion)
}

// order is the order to read an image's layers in on the streaming path:
// the layers the results cache lacks first, in the image's order, then the
// cached ones. A second image on a known base then starts decompressing its
// own layers at once, while the base's results are read on the other cores,
// instead of after them. The image's order is kept for the rest because the
// base comes first and costs the most to inflate per byte: sorting by
// compressed size put the 56 MB Debian base behind 18 layers of 109 MB of
// stored data, and the pass ended with one core inflating it alone.
func (ld *loader) order(diffIDs []v1.Hash) []int {
	var first, last []int
	for i, d := range diffIDs {
		cached := false
		if ld.opts.Select != nil && d.Hex != "" {
			_, err := os.Stat(ld.results.path(ld.resultKey(d)))
			cached = err == nil
		}
		if cached {
			last = append(last, i)
		} else {
			first = append(first, i)
		}
	}
	return append(first, last...)
}

// localIndexed readies a local layer for the streaming path: in place when
// it is an uncompressed tar, one streaming pass (or the results cache) when
// it is compressed.
func (ld *loader) localIndexed(ra io.ReaderAt, size int64, blob, diffID v1.Hash) (*layerfs.Indexed, error) {
	head := make([]byte, 4)
	n, _ := ra.ReadAt(head, 0)
	if !bytes.HasPrefix(head[:n], gzipMagic) && !bytes.HasPrefix(head[:n], zstdMagic) {
		name := layerName(blob, diffID)
		if size > ld.opts.Limits.MaxLayerSize {
			return nil, fmt.Errorf("layer %s: %w: %d > %d bytes", name, ErrLayerTooLarge, size, ld.opts.Limits.MaxLayerSize)
		}
		if err := ld.budget.take(size); err != nil {
			return nil, fmt.Errorf("layer %s: %w", name, err)
		}
		ld.counts.inPlace.Add(1)
		return layerfs.IndexLayer(layerfs.Layer{DiffID: diffID.String(), Data: ra, Size: size})
	}
	return ld.streamed(blob, diffID, func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(ra, 0, size)), nil
	})
}

// streamed returns a compressed layer's index and kept content: from the
// results cache when this layer was read before with the same selection,
// else from one streaming pass over open's stream, under the limits, the
// diffID checked on the way. No decompressed byte is written to disk
// except kept content past the memory limit, in an unlinked file.
func (ld *loader) streamed(blob, diffID v1.Hash, open func() (io.ReadCloser, error)) (*layerfs.Indexed, error) {
	name := layerName(blob, diffID)
	key := ld.resultKey(diffID)
	if diffID.Hex != "" {
		if f, _, closer, ok := ld.results.open(key); ok {
			ix, err := readResult(f, diffID, ld.streamOpts())
			closer.Close()
			if err == nil {
				// Charged as the layer was when streamed: an image of
				// cached layers passes no limit the same image read cold
				// would not (Decode bounded it by the layer limit).
				if err := ld.budget.take(ix.Size); err != nil {
					ix.Close()
					return nil, fmt.Errorf("layer %s: %w", name, err)
				}
				ld.counts.cached.Add(1)
				return ix, nil
			}
			slog.Warn("layer results cache entry is damaged: reading the layer again", "layer", name, "err", err)
			ld.results.drop(key)
		}
	}
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	g := &guard{lim: &ld.opts.Limits, image: ld.budget}
	plain, done, err := plainStream(rc, g)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	h := sha256.New()
	pipe := newLayerPipe(plain, h)
	defer func() {
		pipe.Close(rc.Close)
		done()
	}()
	ix, err := layerfs.IndexStream(pipe, diffID.String(), ld.streamOpts())
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	if err := pipe.drain(); err != nil { // the tar's end padding, for the digest
		ix.Close()
		return nil, fmt.Errorf("layer %s: decompressing: %w", name, err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if diffID.Hex != "" && got != diffID {
		ix.Close()
		return nil, fmt.Errorf("layer %s: uncompressed content has digest %s, the image config says %s", name, got, diffID)
	}
	ix.DiffID, ix.Size = got.String(), g.n
	ld.counts.streamed.Add(1)
	if err := ld.storeResult(ld.resultKey(got), ix); err != nil {
		slog.Info("layer results not cached", "layer", name, "err", err)
	}
	return ix, nil
}

func readResult(f *os.File, diffID v1.Hash, opts layerfs.StreamOptions) (*layerfs.Indexed, error) {
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return layerfs.Decode(zr, diffID.String(), opts)
}

// resultEncoders are reused from layer to layer: an encoder's tables are
// a megabyte of garbage otherwise, for every layer of every image.
var resultEncoders = sync.Pool{New: func() any {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // the options are constants
	}
	return zw
}}

// storeResult writes a layer's index and kept content, zstd-compressed,
// into the results cache under the quota.
func (ld *loader) storeResult(key string, ix *layerfs.Indexed) error {
	c := ld.results
	c.mu.Lock()
	err := c.load()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".partial-*")
	if err != nil {
		return fmt.Errorf("creating results cache file: %w", err)
	}
	w := &reservingWriter{w: tmp, c: c}
	zw := resultEncoders.Get().(*zstd.Encoder)
	zw.Reset(w)
	err = ix.Encode(zw)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	zw.Reset(nil)
	resultEncoders.Put(zw)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		c.release(w.reserved)
		return err
	}
	closer, err := c.commit(tmp, key, w.written, w.reserved)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	ld.mu.Lock()
	ld.addedResults = append(ld.addedResults, key)
	ld.mu.Unlock()
	return closer.Close()
}

// resultsDir is where streamed layers' results are cached.
func resultsDir(cacheDir string) string { return filepath.Join(cacheDir, "results", "sha256") }
