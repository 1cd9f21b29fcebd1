package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// Kinds of image source.
const (
	KindRegistry      = "registry"
	KindOCILayout     = "oci-layout"
	KindOCIArchive    = "oci-archive"
	KindDockerArchive = "docker-archive"
	KindDir           = "dir"
)

// Options tune how an image is opened.
type Options struct {
	// Platform picks one image from a multi-platform index ("linux/arm64").
	// Empty means linux and the architecture Bulwark runs on.
	Platform string
	// Insecure allows plain HTTP and unverified TLS for any registry.
	Insecure bool
	// CacheDir holds decompressed layers. Empty means the user cache dir.
	CacheDir string
	// Limits bound layer, image and cache sizes and the compression ratio
	// (decompression bombs); zero fields take the defaults.
	Limits Limits
	// Select, when set, reads compressed layers (and registry layers) in one
	// streaming pass that keeps only the content Select asks for; no
	// decompressed layer is written to disk, and each layer's index and
	// kept content are cached by diffID (CacheDir/results), so a layer is
	// read once whatever image it is part of. Readers of the image may
	// then open only the files Select kept (layerfs.ErrNotRetained).
	Select layerfs.Selector
	// SelectKey names the selection in the results cache; change it when
	// the selection changes. It must also name Inspect and its settings.
	SelectKey string
	// Inspect, with Select, sees every regular file of a streamed layer as
	// it streams past (the secret scanner); its per-layer result is cached
	// with the layer's index (layerfs.Layer.Notes). Layers read in place
	// (uncompressed) are not inspected: their content stays readable.
	Inspect layerfs.Inspector
	// Digests picks the files the streaming pass hashes.
	Digests layerfs.Digests
	// Progress receives download progress lines; nil is silent.
	Progress io.Writer
	// Keychain resolves registry credentials; nil means the Docker config
	// and its credential helpers.
	Keychain authn.Keychain
	// Transport makes the registry requests; nil means go-containerregistry's
	// default. The server's refuses non-public addresses (SSRF).
	Transport http.RoundTripper
}

func (o *Options) fill() error {
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("finding the cache directory (set --cache-dir): %w", err)
		}
		o.CacheDir = filepath.Join(dir, "bulwark")
	}
	o.Limits.fill()
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	// checked whatever the source: "--platform arm64" was taken as the OS
	// arm64 and, on a single-platform image, ignored without a word
	_, err := o.platform()
	return err
}

func (o *Options) platform() (*v1.Platform, error) {
	if o.Platform == "" {
		return &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(o.Platform)
	if err != nil {
		return nil, fmt.Errorf("parsing platform %q: %w", o.Platform, err)
	}
	if p.OS == "" || p.Architecture == "" {
		return nil, fmt.Errorf("parsing platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", o.Platform)
	}
	return p, nil
}

// Image is an opened image: its description, config and squashed files.
type Image struct {
	Source sbom.Source
	// Config is nil for a directory source.
	Config *v1.ConfigFile
	FS     *layerfs.FS
	// Stats tell how the layers were read.
	Stats Stats

	closers []io.Closer
}

// Close releases the files the image holds open.
func (img *Image) Close() error {
	var errs []error
	if img.FS != nil {
		errs = append(errs, img.FS.Close())
	}
	for _, c := range img.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// adopt makes img responsible for closing the non-nil closers.
func (img *Image) adopt(closers []io.Closer) {
	for _, c := range closers {
		if c != nil {
			img.closers = append(img.closers, c)
		}
	}
}

// SourceError wraps any failure to open a source with the source's name.
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return fmt.Sprintf("image %s: %v", e.Source, e.Err) }
func (e *SourceError) Unwrap() error { return e.Err }

// Open opens input, which is a registry reference, a path (the kind is
// detected) or a path with an explicit scheme: registry:, oci:, oci-archive:,
// docker-archive:, dir:.
func Open(ctx context.Context, input string, opts Options) (img *Image, err error) {
	defer layerfs.Recovered(&err, "opening "+input)
	img, err = open(ctx, input, opts)
	if err == nil {
		if err = checkPlatform(img.Config, opts.Platform); err != nil {
			img.Close()
		}
	}
	if err != nil {
		return nil, &SourceError{Source: input, Err: err}
	}
	img.Source.Input = input
	return img, nil
}

// checkPlatform refuses an image whose config names another platform than
// the one asked for with --platform: a single-platform image was read as
// whatever was asked, without a word. Nothing asked, or a config naming no
// architecture (a root filesystem, some artifacts), passes.
func checkPlatform(cfg *v1.ConfigFile, want string) error {
	if want == "" || cfg == nil || cfg.Architecture == "" {
		return nil
	}
	w, err := v1.ParsePlatform(want)
	if err != nil {
		return err
	}
	got := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if got.OS != w.OS || got.Architecture != w.Architecture || (w.Variant != "" && got.Variant != w.Variant) {
		return fmt.Errorf("the image is %s, not %s (--platform)", got.String(), w.String())
	}
	return nil
}

func open(ctx context.Context, input string, opts Options) (*Image, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	kind, target, err := detect(input)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindDir:
		return openDir(target)
	case KindOCILayout:
		return openLayout(ctx, target, opts)
	case KindOCIArchive, KindDockerArchive:
		return openArchive(ctx, kind, target, opts)
	default:
		return openRemote(ctx, target, opts)
	}
}

var schemes = map[string]string{
	"registry":       KindRegistry,
	"docker":         KindRegistry,
	"oci":            KindOCILayout,
	"oci-dir":        KindOCILayout,
	"oci-layout":     KindOCILayout,
	"oci-archive":    KindOCIArchive,
	"docker-archive": KindDockerArchive,
	"dir":            KindDir,
	"rootfs":         KindDir,
}

// detect tells the kind of source from an explicit scheme or by looking at
// the path; anything that is not a local path is a registry reference.
func detect(input string) (kind, target string, err error) {
	if scheme, rest, ok := strings.Cut(input, ":"); ok {
		if k, known := schemes[scheme]; known {
			// For archives the stated kind is a preference: the content
			// decides how they are read, as newer docker save archives
			// carry both manifest.json and index.json.
			return k, rest, nil
		}
	}
	fi, err := os.Stat(input)
	switch {
	case err == nil && fi.IsDir():
		if _, err := os.Stat(filepath.Join(input, "oci-layout")); err == nil {
			return KindOCILayout, input, nil
		}
		return KindDir, input, nil
	case err == nil:
		return KindDockerArchive, input, nil // openArchive reads what it holds
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("reading %q: %w", input, err)
	}
	if strings.HasPrefix(input, "/") || strings.HasPrefix(input, "./") || strings.HasPrefix(input, "../") ||
		strings.HasSuffix(input, ".tar") || strings.HasSuffix(input, ".tar.gz") {
		return "", "", fmt.Errorf("no such file or directory: %q", input)
	}
	return KindRegistry, input, nil
}

func openDir(dir string) (*Image, error) {
	fsys, err := layerfs.FromDir(dir)
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(dir)
	return &Image{
		Source: sbom.Source{Kind: KindDir, Name: abs, Layers: []sbom.Layer{}},
		FS:     fsys,
	}, nil
}
