package image

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// layerName is how messages name a layer: its blob digest when known.
func layerName(blob, diffID v1.Hash) string {
	if blob.Hex != "" {
		return blob.String()
	}
	return diffID.String()
}

// loader readies the layers of one image under its limits: the per-image
// budget, and the cache layers it added, removed again if the image is
// refused so that a refused image leaves nothing behind.
type loader struct {
	opts    *Options
	cache   *layerCache // decompressed layers (the seek path)
	results *layerCache // streamed layers' index and kept content
	budget  *imageBudget
	counts  streamCounters

	mu           sync.Mutex
	added        []string
	addedResults []string
}

func newLoader(opts *Options) *loader {
	return &loader{
		opts:    opts,
		cache:   cacheFor(filepath.Join(opts.CacheDir, "layers", "sha256"), ".tar", opts.Limits.CacheMaxSize),
		results: cacheFor(resultsDir(opts.CacheDir), ".idx.zst", opts.Limits.CacheMaxSize),
		budget:  &imageBudget{max: opts.Limits.MaxImageSize},
	}
}

// abandon removes the layers this image added to the cache; call it after
// the image's files are closed.
func (ld *loader) abandon() {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	for _, h := range ld.added {
		ld.cache.drop(h)
	}
	for _, k := range ld.addedResults {
		ld.results.drop(k)
	}
	ld.added, ld.addedResults = nil, nil
}

// local returns a layer that lives in a local file region: read in place
// when it is an uncompressed tar, decompressed into the cache when not.
func (ld *loader) local(ra io.ReaderAt, size int64, blob, diffID v1.Hash) (layerfs.Layer, io.Closer, error) {
	head := make([]byte, 4)
	n, _ := ra.ReadAt(head, 0)
	head = head[:n]
	if !bytes.HasPrefix(head, gzipMagic) && !bytes.HasPrefix(head, zstdMagic) {
		if size > ld.opts.Limits.MaxLayerSize {
			return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w: %d > %d bytes", layerName(blob, diffID), ErrLayerTooLarge, size, ld.opts.Limits.MaxLayerSize)
		}
		if err := ld.budget.take(size); err != nil {
			return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w", layerName(blob, diffID), err)
		}
		return layerfs.Layer{DiffID: diffID.String(), Data: ra, Size: size}, nil, nil
	}
	return ld.cached(blob, diffID, func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(ra, 0, size)), nil
	})
}

// cached returns the layer from the cache, filling the cache from open (a
// compressed or plain tar stream) when it is not there yet. The diffID is
// checked while writing; a layer that does not match, or that passes a
// limit, is not kept.
func (ld *loader) cached(blob, diffID v1.Hash, open func() (io.ReadCloser, error)) (layerfs.Layer, io.Closer, error) {
	name := layerName(blob, diffID)
	c := ld.cache
	if diffID.Hex != "" {
		if f, size, closer, ok := c.open(diffID.Hex); ok {
			if err := ld.budget.take(size); err != nil {
				closer.Close()
				return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w", name, err)
			}
			return layerfs.Layer{DiffID: diffID.String(), Data: f, Size: size}, closer, nil
		}
	}
	c.mu.Lock()
	err := c.load()
	c.mu.Unlock()
	if err != nil {
		return layerfs.Layer{}, nil, err
	}
	rc, err := open()
	if err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w", name, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(c.dir, ".partial-*")
	if err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("creating layer cache file: %w", err)
	}
	w := &reservingWriter{w: tmp, c: c}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
			c.release(w.reserved)
		}
	}()
	h := sha256.New()
	n, err := decompress(rc, io.MultiWriter(w, h), &guard{lim: &ld.opts.Limits, image: ld.budget})
	if err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w", name, err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if diffID.Hex == "" {
		diffID = got
	} else if got != diffID {
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: uncompressed content has digest %s, the image config says %s", name, got, diffID)
	}
	keep = true
	closer, err := c.commit(tmp, diffID.Hex, n, w.reserved)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w", name, err)
	}
	ld.mu.Lock()
	ld.added = append(ld.added, diffID.Hex)
	ld.mu.Unlock()
	return layerfs.Layer{DiffID: diffID.String(), Data: tmp, Size: n}, closer, nil
}

// decompress copies the tar inside r (gzip, zstd or plain) to w under the
// guard's limits.
func decompress(r io.Reader, w io.Writer, g *guard) (int64, error) {
	plain, done, err := plainStream(r, g)
	if err != nil {
		return 0, err
	}
	defer done()
	n, err := io.CopyBuffer(w, plain, make([]byte, 256<<10))
	if err != nil {
		return n, fmt.Errorf("decompressing: %w", err)
	}
	return n, nil
}

// plainStream returns the tar inside r (gzip, zstd or plain), every byte
// charged to the guard; done releases the decoder.
func plainStream(r io.Reader, g *guard) (plain io.Reader, done func(), err error) {
	src := &countingSource{r: r}
	br := bufio.NewReaderSize(src, 256<<10)
	head, _ := br.Peek(4)
	plain, done = br, func() {}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("decompressing gzip: %w", err)
		}
		plain, done, g.compressed = zr, func() { zr.Close() }, src
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("decompressing zstd: %w", err)
		}
		plain, done, g.compressed = zr, zr.Close, src
	}
	return &guardedReader{r: plain, g: g}, done, nil
}
