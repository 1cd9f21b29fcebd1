package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// maxMetadataSize bounds manifests, indexes and configs read into memory.
const maxMetadataSize = 8 << 20

// bundle is a local OCI layout or archive: files read in place.
type bundle interface {
	open(name string) (io.ReaderAt, int64, error)
}

// dirBundle is an OCI layout directory; files are opened through os.Root.
type dirBundle struct {
	root *os.Root

	mu    sync.Mutex // layers are opened in parallel
	files []io.Closer
}

func (d *dirBundle) open(name string) (io.ReaderAt, int64, error) {
	f, err := d.root.Open(name)
	if err != nil {
		return nil, 0, err
	}
	ra, closer, size, err := fileReaderAt(f)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	d.mu.Lock()
	d.files = append(d.files, closer)
	d.mu.Unlock()
	return ra, size, nil
}

func (d *dirBundle) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.files {
		f.Close()
	}
	return d.root.Close()
}

// tarBundle is an archive; members are regions of the one archive file.
type tarBundle struct {
	closer  io.Closer
	members map[string]*io.SectionReader
}

func (t *tarBundle) open(name string) (io.ReaderAt, int64, error) {
	m, ok := t.members[path.Clean(name)]
	if !ok {
		return nil, 0, fmt.Errorf("archive has no member %q", name)
	}
	return m, m.Size(), nil
}

func (t *tarBundle) Close() error { return t.closer.Close() }

func indexArchive(f *os.File) (*tarBundle, error) {
	ra, closer, size, err := fileReaderAt(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &tarBundle{closer: closer, members: map[string]*io.SectionReader{}}
	head := make([]byte, 4)
	n, _ := ra.ReadAt(head, 0)
	if bytes.HasPrefix(head[:n], gzipMagic) || bytes.HasPrefix(head[:n], zstdMagic) {
		t.Close()
		return nil, errors.New("the archive itself is compressed: decompress it first (gunzip/zstd -d)")
	}
	sr := io.NewSectionReader(ra, 0, size)
	tr := tar.NewReader(sr)
	last := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Close()
			if len(t.members) == 0 {
				return nil, fmt.Errorf("not a tar archive: %w", err)
			}
			return nil, fmt.Errorf("reading archive after entry %q: %w", last, err)
		}
		last = h.Name
		if h.Typeflag != tar.TypeReg {
			continue
		}
		off, _ := sr.Seek(0, io.SeekCurrent)
		if off+h.Size > size {
			t.Close()
			return nil, fmt.Errorf("archive entry %q: archive is truncated", h.Name)
		}
		t.members[path.Clean(h.Name)] = io.NewSectionReader(ra, off, h.Size)
	}
	if len(t.members) == 0 {
		t.Close()
		return nil, errors.New("not an image archive: no files in the tar")
	}
	return t, nil
}

func readSmall(b bundle, name string) ([]byte, error) {
	ra, size, err := b.open(name)
	if err != nil {
		return nil, err
	}
	if size > maxMetadataSize {
		return nil, fmt.Errorf("%s is %d bytes, more than metadata may be", name, size)
	}
	buf := make([]byte, size)
	if _, err := ra.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return buf, nil
}

func openArchive(ctx context.Context, kind, file string, opts Options) (*Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	t, err := indexArchive(f)
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(file)
	var img *Image
	_, hasManifest := t.members["manifest.json"]
	_, hasIndex := t.members["index.json"]
	switch {
	case hasIndex && (kind == KindOCIArchive || !hasManifest):
		img, err = fromIndex(ctx, t, KindOCIArchive, abs, opts)
	case hasManifest:
		img, err = fromDockerManifest(ctx, t, abs, opts)
	default:
		err = errors.New("not an image archive: it has neither manifest.json (docker save) nor index.json (OCI)")
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	img.closers = append(img.closers, t)
	return img, nil
}

func openLayout(ctx context.Context, dir string, opts Options) (*Image, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	d := &dirBundle{root: root}
	abs, _ := filepath.Abs(dir)
	img, err := fromIndex(ctx, d, KindOCILayout, abs, opts)
	if err != nil {
		d.Close()
		return nil, err
	}
	img.closers = append(img.closers, d)
	return img, nil
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// fromIndex reads an OCI layout's index.json and picks the image for the
// wanted platform, descending into nested indexes.
func fromIndex(ctx context.Context, b bundle, kind, name string, opts Options) (*Image, error) {
	raw, err := readSmall(b, "index.json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("not an OCI image layout: no index.json in it")
	}
	if err != nil {
		return nil, err
	}
	want, err := opts.platform()
	if err != nil {
		return nil, err
	}
	desc, err := pickManifest(b, raw, want, 0)
	if err != nil {
		return nil, err
	}
	mraw, err := readSmall(b, blobPath(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(mraw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", desc.Digest, err)
	}
	refs := make([]layerRef, len(m.Layers))
	for i, l := range m.Layers {
		refs[i] = layerRef{member: blobPath(l.Digest), blob: l.Digest, size: l.Size}
	}
	src := sbom.Source{Kind: kind, Name: name, Digest: desc.Digest.String()}
	return fromParts(ctx, b, src, blobPath(m.Config.Digest), refs, opts)
}

func pickManifest(b bundle, raw []byte, want *v1.Platform, depth int) (v1.Descriptor, error) {
	if depth > 4 {
		return v1.Descriptor{}, errors.New("image indexes nest too deep")
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parsing index: %w", err)
	}
	var candidates []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.MediaType.IsIndex() || d.MediaType.IsImage() || d.MediaType == "" {
			candidates = append(candidates, d)
		}
	}
	if len(candidates) == 0 {
		return v1.Descriptor{}, errors.New("index lists no image")
	}
	for _, d := range candidates {
		if d.Platform != nil && !d.Platform.Satisfies(*want) {
			continue
		}
		if d.MediaType.IsIndex() {
			nested, err := readSmall(b, blobPath(d.Digest))
			if err != nil {
				return v1.Descriptor{}, err
			}
			return pickManifest(b, nested, want, depth+1)
		}
		if d.Platform != nil || len(candidates) == 1 {
			return d, nil
		}
	}
	if len(candidates) == 1 || candidates[0].Platform == nil {
		return candidates[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s in the index", want)
}

// fromDockerManifest reads a `docker save` archive (its first image).
func fromDockerManifest(ctx context.Context, b bundle, name string, opts Options) (*Image, error) {
	raw, err := readSmall(b, "manifest.json")
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest.json: %w", err)
	}
	if len(m) == 0 {
		return nil, errors.New("manifest.json lists no image")
	}
	d := m[0]
	refs := make([]layerRef, len(d.Layers))
	for i, l := range d.Layers {
		refs[i] = layerRef{member: l}
		if h, err := v1.NewHash("sha256:" + path.Base(l)); err == nil && path.Dir(l) == "blobs/sha256" {
			refs[i].blob = h
		}
	}
	src := sbom.Source{Kind: KindDockerArchive, Name: name}
	if len(d.RepoTags) > 0 {
		src.Name = d.RepoTags[0]
	}
	return fromParts(ctx, b, src, d.Config, refs, opts)
}

type layerRef struct {
	member string
	blob   v1.Hash
	size   int64
}

// fromParts reads the config and readies every layer, in parallel.
func fromParts(ctx context.Context, b bundle, src sbom.Source, configName string, refs []layerRef, opts Options) (*Image, error) {
	craw, err := readSmall(b, configName)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(craw))
	if err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", configName, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(refs) {
		return nil, fmt.Errorf("config lists %d layers (diff_ids), the manifest %d", len(cfg.RootFS.DiffIDs), len(refs))
	}
	cid, _, _ := v1.SHA256(bytes.NewReader(craw))
	src.ConfigID = cid.String()
	layers := make([]layerfs.Layer, len(refs))
	closers := make([]io.Closer, len(refs))
	indexes := make([]*layerfs.Indexed, len(refs))
	ld := newLoader(&opts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range ld.order(cfg.RootFS.DiffIDs) {
		r := refs[i]
		g.Go(func() (err error) {
			defer layerfs.Recovered(&err, fmt.Sprintf("layer %d", i))
			if err := gctx.Err(); err != nil {
				return err
			}
			ra, size, err := b.open(r.member)
			if err != nil {
				return fmt.Errorf("layer %s: %w", layerName(r.blob, cfg.RootFS.DiffIDs[i]), err)
			}
			if opts.Select != nil {
				indexes[i], err = ld.localIndexed(ra, size, r.blob, cfg.RootFS.DiffIDs[i])
				if err == nil {
					closers[i] = indexes[i]
				}
				return err
			}
			layers[i], closers[i], err = ld.local(ra, size, r.blob, cfg.RootFS.DiffIDs[i])
			return err
		})
	}
	err = g.Wait()
	img := &Image{Source: src, Config: cfg}
	img.adopt(closers)
	if err != nil {
		img.Close()
		ld.abandon()
		return nil, err
	}
	if opts.Select != nil {
		return finishIndexed(ctx, img, indexes, refs, ld)
	}
	return finish(ctx, img, layers, refs, ld)
}

// finish fills the source description from the config and squashes layers.
func finish(ctx context.Context, img *Image, layers []layerfs.Layer, refs []layerRef, ld *loader) (*Image, error) {
	describeLayers(img, layers, refs)
	fsys, err := layerfs.Build(ctx, layers)
	if err != nil {
		img.Close()
		ld.abandon()
		return nil, err
	}
	img.FS = fsys
	return img, nil
}

// finishIndexed is finish for layers read by the streaming path.
func finishIndexed(_ context.Context, img *Image, indexes []*layerfs.Indexed, refs []layerRef, ld *loader) (*Image, error) {
	layers := make([]layerfs.Layer, len(indexes))
	for i, ix := range indexes {
		layers[i] = layerfs.Layer{DiffID: ix.DiffID, Size: ix.Size}
	}
	describeLayers(img, layers, refs)
	img.Stats = ld.counts.stats()
	fsys, err := layerfs.BuildIndexed(indexes)
	if err != nil {
		img.Close()
		ld.abandon()
		return nil, err
	}
	img.FS = fsys
	return img, nil
}

// describeLayers fills the source description from the config.
func describeLayers(img *Image, layers []layerfs.Layer, refs []layerRef) {
	cfg := img.Config
	img.Source.Platform = platformString(cfg)
	if !cfg.Created.IsZero() {
		img.Source.Created = cfg.Created.UTC().Format("2006-01-02T15:04:05Z")
	}
	var created []string
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			created = append(created, h.CreatedBy)
		}
	}
	img.Source.Layers = make([]sbom.Layer, len(layers))
	for i, l := range layers {
		sl := sbom.Layer{Index: i, DiffID: l.DiffID, Size: l.Size}
		if refs[i].blob.Hex != "" {
			sl.Digest = refs[i].blob.String()
		}
		if len(created) == len(layers) {
			sl.CreatedBy = created[i]
		}
		img.Source.Layers[i] = sl
	}
}

func platformString(cfg *v1.ConfigFile) string {
	if cfg.OS == "" {
		return ""
	}
	p := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	return p.String()
}
