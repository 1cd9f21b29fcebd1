package vulndb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Media types of the database as an OCI artifact: an image manifest whose
// config is an ArtifactConfig and whose one layer is the SQLite file
// (as Export writes it), zstd-compressed.
const (
	LayerMediaType  types.MediaType = "application/vnd.bulwark.vulndb.layer.v1.sqlite+zstd"
	ConfigMediaType types.MediaType = "application/vnd.bulwark.vulndb.config.v1+json"
)

// ArtifactConfig is the config blob of a database artifact.
type ArtifactConfig struct {
	SchemaVersion int            `json:"schemaVersion"`
	Created       time.Time      `json:"created"`
	Records       int            `json:"records"`
	Sources       []SourceStatus `json:"sources"`
}

// RegistryOptions reach the registry for Push and Pull.
type RegistryOptions struct {
	// Keychain finds credentials; nil means authn.DefaultKeychain (the
	// Docker config and its credential helpers).
	Keychain authn.Keychain
	// Insecure allows plain HTTP (localhost and 127.0.0.1 always may).
	Insecure bool
	// Transport carries the requests; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// MaxSize caps the pulled database, uncompressed; 0 means
	// DefaultMaxArchiveSize.
	MaxSize int64
}

func (o RegistryOptions) ref(s string) (name.Reference, error) {
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(s, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %q: %w", s, err)
	}
	return ref, nil
}

func (o RegistryOptions) remote(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithUserAgent("bulwark")}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	return opts
}

// Artifact describes a pushed or pulled database.
type Artifact struct {
	Ref    string         `json:"ref"`
	Digest string         `json:"digest"` // of the manifest
	Size   int64          `json:"size"`   // of the compressed layer
	Config ArtifactConfig `json:"config"`
}

// Push uploads a snapshot of the database to ref as an OCI artifact.
func (db *DB) Push(ctx context.Context, ref string, opts RegistryOptions) (Artifact, error) {
	r, err := opts.ref(ref)
	if err != nil {
		return Artifact{}, err
	}
	st, err := db.Status(ctx)
	if err != nil {
		return Artifact{}, err
	}
	cfg := ArtifactConfig{SchemaVersion: SchemaVersion, Created: db.now().Truncate(time.Second), Records: st.Records, Sources: st.Sources}
	snap, err := db.snapshot(ctx)
	if err != nil {
		return Artifact{}, err
	}
	defer os.Remove(snap)
	layer, err := compressFile(snap)
	if err != nil {
		return Artifact{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	defer os.Remove(layer.path)
	img, err := newArtifact(cfg, layer)
	if err != nil {
		return Artifact{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	if err := remote.Write(r, img, opts.remote(ctx)...); err != nil {
		return Artifact{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Artifact{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return Artifact{Ref: r.String(), Digest: d.String(), Size: layer.size, Config: cfg}, nil
}

// Pull downloads the database artifact at ref and replaces the database
// file at path with it: the layer is checked against its digest, written
// to a temporary file next to path, opened and checked by SQLite, synced
// and renamed over path. A database open on path elsewhere keeps reading
// the old file until it reopens.
func Pull(ctx context.Context, ref, path string, opts RegistryOptions) (Artifact, error) {
	r, err := opts.ref(ref)
	if err != nil {
		return Artifact{}, err
	}
	img, err := remote.Image(r, opts.remote(ctx)...)
	if err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	if m.Config.MediaType != ConfigMediaType {
		return Artifact{}, fmt.Errorf("pulling %s: not a bulwark vulnerability database (config media type %q)", ref, m.Config.MediaType)
	}
	var desc *v1.Descriptor
	for i, l := range m.Layers {
		if l.MediaType == LayerMediaType {
			if desc != nil {
				return Artifact{}, fmt.Errorf("pulling %s: more than one database layer", ref)
			}
			desc = &m.Layers[i]
		}
	}
	if desc == nil {
		return Artifact{}, fmt.Errorf("pulling %s: no layer of media type %s", ref, LayerMediaType)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	var cfg ArtifactConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: decoding config: %w", ref, err)
	}
	if cfg.SchemaVersion > SchemaVersion {
		return Artifact{}, fmt.Errorf("pulling %s: database schema version %d is newer than this bulwark's (%d)", ref, cfg.SchemaVersion, SchemaVersion)
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	limit := opts.MaxSize
	if limit <= 0 {
		limit = DefaultMaxArchiveSize
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	tmp, err := fetchLayer(layer, filepath.Dir(path), limit)
	if err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: layer %s: %w", ref, desc.Digest, err)
	}
	defer os.Remove(tmp) // after the rename, a no-op
	if err := checkDatabase(tmp); err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	if err := replaceFile(tmp, path); err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Artifact{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return Artifact{Ref: r.String(), Digest: d.String(), Size: desc.Size, Config: cfg}, nil
}

// fetchLayer decompresses layer into a new file in dir, synced to disk.
// The compressed stream is read to its end, which is where go-containerregistry
// checks the digest.
func fetchLayer(layer v1.Layer, dir string, limit int64) (_ string, err error) {
	rc, err := layer.Compressed()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	zr, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return "", err
	}
	defer zr.Close()
	tmp, err := os.CreateTemp(dir, ".pull-*.db")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(zr, limit+1))
	if err != nil {
		return "", fmt.Errorf("decompressing: %w", err)
	}
	if n > limit {
		return "", fmt.Errorf("more than %d bytes uncompressed", limit)
	}
	if _, err = io.Copy(io.Discard, rc); err != nil {
		return "", err
	}
	if err = rc.Close(); err != nil {
		return "", err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return "", err
	}
	if err = tmp.Sync(); err != nil {
		return "", err
	}
	if err = tmp.Close(); err != nil {
		return "", err
	}
	return tmp.Name(), nil
}

// checkDatabase opens a pulled file as a database (migrating an older
// schema) and runs SQLite's quick_check.
func checkDatabase(path string) error {
	db, err := Open(path)
	if err != nil {
		return fmt.Errorf("checking pulled database: %w", err)
	}
	var result string
	err = db.sql.QueryRow("PRAGMA quick_check").Scan(&result)
	db.checkpoint(context.Background())
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("checking pulled database: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("checking pulled database: %s", result)
	}
	return nil
}

// replaceFile renames tmp over path and syncs the directory. The old
// database's WAL and shared-memory files go first: SQLite would otherwise
// apply the old WAL to the new file.
func replaceFile(tmp, path string) error {
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileLayer is the compressed database in a temporary file.
type fileLayer struct {
	path           string
	size           int64
	digest, diffID v1.Hash
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return LayerMediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := zstd.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return readCloser{zr.IOReadCloser(), f}, nil
}

type readCloser struct {
	io.ReadCloser
	f *os.File
}

func (r readCloser) Close() error {
	r.ReadCloser.Close()
	return r.f.Close()
}

// compressFile writes src zstd-compressed to src+".zst", hashing both.
func compressFile(src string) (_ *fileLayer, err error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	l := &fileLayer{path: src + ".zst"}
	out, err := os.Create(l.path)
	if err != nil {
		return nil, err
	}
	defer func() {
		out.Close()
		if err != nil {
			os.Remove(l.path)
		}
	}()
	rawHash, zHash := sha256.New(), sha256.New()
	counter := &countWriter{w: io.MultiWriter(out, zHash)}
	zw, err := zstd.NewWriter(counter, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.MultiWriter(zw, rawHash), in); err != nil {
		zw.Close()
		return nil, fmt.Errorf("compressing database: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing database: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("compressing database: %w", err)
	}
	l.size = counter.n
	l.digest = sha256Hash(zHash)
	l.diffID = sha256Hash(rawHash)
	return l, nil
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// artifact is the database as a v1.Image: a config blob and one layer.
type artifact struct {
	config, manifest []byte
	layer            *fileLayer
}

func newArtifact(cfg ArtifactConfig, layer *fileLayer) (v1.Image, error) {
	config, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgHash, cfgSize, err := v1.SHA256(bytes.NewReader(config))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Size: cfgSize, Digest: cfgHash},
		Layers: []v1.Descriptor{{
			MediaType: LayerMediaType,
			Size:      layer.size,
			Digest:    layer.digest,
			Annotations: map[string]string{
				"org.opencontainers.image.title": "osv.db",
			},
		}},
		Annotations: map[string]string{
			"org.opencontainers.image.created": cfg.Created.UTC().Format(time.RFC3339),
		},
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{config: config, manifest: manifest, layer: layer})
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == a.layer.digest {
		return a.layer, nil
	}
	return nil, fmt.Errorf("no layer %s in the database artifact", h)
}
