package image

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// ErrLayerTooLarge reports a layer whose uncompressed size passes the limit.
var ErrLayerTooLarge = errors.New("uncompressed layer is larger than the limit (--max-layer-size)")

// layerName is how messages name a layer: its blob digest when known.
func layerName(blob, diffID v1.Hash) string {
	if blob.Hex != "" {
		return blob.String()
	}
	return diffID.String()
}

// localLayer returns a layer that lives in a local file region: read in
// place when it is an uncompressed tar, decompressed into the cache when not.
func localLayer(ra io.ReaderAt, size int64, blob, diffID v1.Hash, opts *Options) (layerfs.Layer, io.Closer, error) {
	head := make([]byte, 4)
	n, _ := ra.ReadAt(head, 0)
	head = head[:n]
	if !bytes.HasPrefix(head, gzipMagic) && !bytes.HasPrefix(head, zstdMagic) {
		if size > opts.MaxLayerSize {
			return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w: %d > %d bytes", layerName(blob, diffID), ErrLayerTooLarge, size, opts.MaxLayerSize)
		}
		return layerfs.Layer{DiffID: diffID.String(), Data: ra, Size: size}, nil, nil
	}
	return cachedLayer(blob, diffID, opts, func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(ra, 0, size)), nil
	})
}

// cachedLayer returns the layer from the cache, filling the cache from open
// (a compressed or plain tar stream) when it is not there yet. The diffID is
// checked while writing; a layer that does not match is not kept.
func cachedLayer(blob, diffID v1.Hash, opts *Options, open func() (io.ReadCloser, error)) (layerfs.Layer, io.Closer, error) {
	name := layerName(blob, diffID)
	dir := filepath.Join(opts.CacheDir, "layers", "sha256")
	final := filepath.Join(dir, diffID.Hex+".tar")
	if diffID.Hex != "" {
		if f, err := os.Open(final); err == nil {
			ra, closer, size, err := fileReaderAt(f)
			if err == nil {
				return layerfs.Layer{DiffID: diffID.String(), Data: ra, Size: size}, closer, nil
			}
			f.Close()
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("creating layer cache: %w", err)
	}
	rc, err := open()
	if err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w", name, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".partial-*")
	if err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("creating layer cache file: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := decompress(rc, io.MultiWriter(tmp, h), opts.MaxLayerSize)
	if err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: %w", name, err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if diffID.Hex == "" {
		diffID = got
		final = filepath.Join(dir, diffID.Hex+".tar")
	} else if got != diffID {
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: uncompressed content has digest %s, the image config says %s", name, got, diffID)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: storing in cache: %w", name, err)
	}
	keep = true
	ra, closer, _, err := fileReaderAt(tmp)
	if err != nil {
		tmp.Close()
		return layerfs.Layer{}, nil, fmt.Errorf("layer %s: reading from cache: %w", name, err)
	}
	return layerfs.Layer{DiffID: diffID.String(), Data: ra, Size: n}, closer, nil
}

// decompress copies the tar inside r (gzip, zstd or plain) to w and refuses
// to write more than max bytes.
func decompress(r io.Reader, w io.Writer, max int64) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(4)
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("decompressing gzip: %w", err)
		}
		defer zr.Close()
		src = zr
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return 0, fmt.Errorf("decompressing zstd: %w", err)
		}
		defer zr.Close()
		src = zr
	}
	n, err := io.Copy(w, io.LimitReader(src, max+1))
	if err != nil {
		return n, fmt.Errorf("decompressing: %w", err)
	}
	if n > max {
		return n, fmt.Errorf("%w: more than %d bytes", ErrLayerTooLarge, max)
	}
	return n, nil
}
