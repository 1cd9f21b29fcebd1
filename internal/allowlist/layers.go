package allowlist

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// Layer is one image layer, bottom first: its diffID and a way to read its
// tar, compressed (gzip, zstd) or not.
type Layer struct {
	DiffID string
	Open   func() (io.ReadCloser, error)
}

// FromLayers builds the list from the image's layers, for an image whose
// inventory carries no content digests: one streaming pass per layer that
// hashes executables, ELF files and scripts and keeps no content.
func FromLayers(ctx context.Context, image string, layers []Layer, cfg Config) (*List, error) {
	var indexed []*layerfs.Indexed
	defer func() {
		for _, ix := range indexed {
			ix.Close()
		}
	}()
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ix, err := indexLayer(l)
		if err != nil {
			return nil, fmt.Errorf("reading layer %q of %q: %w", l.DiffID, image, err)
		}
		indexed = append(indexed, ix)
	}
	fsys, err := layerfs.BuildIndexed(indexed)
	if err != nil {
		return nil, fmt.Errorf("squashing the layers of %q: %w", image, err)
	}
	nodes := fsys.Files()
	if len(nodes) > MaxEntries {
		return nil, &TooLargeError{What: fmt.Sprintf("image of %d files", len(nodes)), Limit: MaxEntries}
	}
	files := make([]sbom.File, 0, len(nodes))
	for _, n := range nodes {
		f := sbom.File{Path: n.Path, Mode: fmt.Sprintf("%04o", n.Mode.Perm()), Linkname: n.Linkname, Digest: n.Digest}
		switch {
		case n.IsRegular():
			f.Type = "file"
		case n.IsSymlink():
			f.Type = "symlink"
		default:
			continue
		}
		files = append(files, f)
	}
	return FromInventory(image, files, cfg)
}

func indexLayer(l Layer) (*layerfs.Indexed, error) {
	rc, err := l.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := decompress(rc)
	if err != nil {
		return nil, err
	}
	return layerfs.IndexStream(r, l.DiffID, layerfs.StreamOptions{Digests: layerfs.DigestExecutables})
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress recognises gzip and zstd by their magic bytes.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("opening gzip stream: %w", err)
		}
		return z, nil
	case bytes.HasPrefix(head, zstdMagic):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("opening zstd stream: %w", err)
		}
		return z.IOReadCloser(), nil
	}
	return br, nil
}
