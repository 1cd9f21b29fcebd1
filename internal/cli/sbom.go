package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/catalog"
	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// imageOptions are the flags of every command that reads an image.
type imageOptions struct {
	platform    string
	insecure    bool
	cacheDir    string
	limits      image.Limits
	maxFileSize int64
	// keepLayers and fileDigests are the streaming flags of the commands
	// that only inventory (sbom, scan).
	keepLayers  bool
	fileDigests string
}

// addStreamFlags adds the flags of the streaming inventory.
func (o *imageOptions) addStreamFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.keepLayers, "keep-layers", false, "decompress compressed layers whole into the layer cache and keep them (debugging) instead of one streaming pass that keeps only what the catalogers read")
	cmd.Flags().StringVar(&o.fileDigests, "file-digests", "executables", "files whose SHA-256 the file table carries: executables (executables, ELF, scripts, shared libraries), all, none")
}

func parseDigests(s string) (layerfs.Digests, error) {
	switch s {
	case "", "executables":
		return layerfs.DigestExecutables, nil
	case "all":
		return layerfs.DigestAll, nil
	case "none":
		return layerfs.DigestNone, nil
	}
	return 0, fmt.Errorf("--file-digests %q: want executables, all or none", s)
}

func (o *imageOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.platform, "platform", "", "platform to pick from a multi-platform image, e.g. linux/arm64 (default linux/<this machine's arch>)")
	f.BoolVar(&o.insecure, "insecure", false, "allow plain HTTP and unverified TLS for the registry (localhost and private addresses always may)")
	f.StringVar(&o.cacheDir, "cache-dir", "", "layer cache directory (default $XDG_CACHE_HOME/bulwark)")
	addLimitFlags(f, &o.limits)
	f.Int64Var(&o.maxFileSize, "max-file-size", catalog.DefaultMaxFileSize, "largest file, in bytes, a cataloger reads")
}

func (o *imageOptions) imageOpts(g *globalOptions) image.Options {
	return image.Options{
		Platform: o.platform,
		Insecure: o.insecure,
		CacheDir: o.cacheDir,
		Limits:   o.limits,
		Progress: g.progress(),
	}
}

// addLimitFlags adds the flags that bound what an image may cost, shared by
// every command that reads images and by the server.
func addLimitFlags(f *pflag.FlagSet, l *image.Limits) {
	f.Int64Var(&l.MaxLayerSize, "max-layer-size", image.DefaultMaxLayerSize, "refuse a layer larger than this many bytes uncompressed (-1: no limit)")
	f.Int64Var(&l.MaxImageSize, "max-image-size", image.DefaultMaxImageSize, "refuse an image whose layers together are larger than this many bytes uncompressed (-1: no limit)")
	f.Int64Var(&l.MaxRatio, "max-compression-ratio", image.DefaultMaxRatio, "refuse a layer that decompresses to more than this many times its compressed size, past its first 16 MiB (decompression bombs; -1: no limit)")
	f.Int64Var(&l.CacheMaxSize, "cache-max-size", image.DefaultCacheMaxSize, "bytes each cache directory (per-layer results; decompressed layers with --keep-layers) may hold, entries being written included; least recently used entries are evicted (-1: no limit)")
}

// outputOptions pick the format and destination of a report.
type outputOptions struct {
	format  string
	output  string
	formats []string
}

func (o *outputOptions) addFlags(cmd *cobra.Command, formats []string) {
	o.formats = formats
	cmd.Flags().StringVarP(&o.format, "format", "f", formats[0], "output format: "+strings.Join(formats, ", "))
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "write the report to this file instead of stdout")
	cmd.PreRunE = func(*cobra.Command, []string) error { return o.checkDestination() }
}

// checkDestination refuses, before any work, an -o that cannot be written:
// a directory, or a file in a directory that does not exist (found after a
// whole scan, it said "rename /tmp/.bulwark-123 /tmp/out: file exists").
func (o *outputOptions) checkDestination() error {
	if o.output == "" {
		return nil
	}
	if fi, err := os.Stat(o.output); err == nil && fi.IsDir() {
		return fmt.Errorf("-o %s is a directory: name a file", o.output)
	}
	if fi, err := os.Stat(filepath.Dir(o.output)); err != nil || !fi.IsDir() {
		return fmt.Errorf("-o %s: directory %s does not exist", o.output, filepath.Dir(o.output))
	}
	return nil
}

// write runs encode on the chosen destination. A file is written next to
// its final name and renamed, so a failed run leaves no half report.
func (o *outputOptions) write(cmd *cobra.Command, encode func(io.Writer) error) error {
	if o.output == "" {
		return encode(cmd.OutOrStdout())
	}
	if err := o.checkDestination(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.output), ".bulwark-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", o.output, err)
	}
	defer os.Remove(tmp.Name())
	if err := encode(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", o.output, err)
	}
	if err := os.Rename(tmp.Name(), o.output); err != nil {
		return fmt.Errorf("writing %s: %w", o.output, err)
	}
	return nil
}

func newSBOMCmd(g *globalOptions) *cobra.Command {
	var (
		img   imageOptions
		out   outputOptions
		files bool
	)
	cmd := &cobra.Command{
		Use:   "sbom SOURCE",
		Short: "List the packages inside an image (SBOM)",
		Long: `List the OS and language packages inside an image.

SOURCE is a registry reference (host/repo:tag, host/repo@sha256:...), an OCI
image layout directory, an OCI archive, a docker save archive, or a root
filesystem directory. The kind is detected; force it with a prefix:
registry:, oci:, oci-archive:, docker-archive:, dir:.`,
		Example: `  bulwark sbom registry.example.com/app:1.4
  bulwark sbom ./image.tar --format cyclonedx -o app.cdx.json
  bulwark sbom dir:/mnt/rootfs --format spdx`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(out.format, out.formats); err != nil {
				return err
			}
			s, err := buildSBOM(cmd, g, args[0], img, files)
			if err != nil {
				return err
			}
			return out.write(cmd, func(w io.Writer) error { return sbom.Encode(w, s, out.format) })
		},
	}
	img.addFlags(cmd)
	img.addStreamFlags(cmd)
	out.addFlags(cmd, sbom.Formats)
	cmd.Flags().BoolVar(&files, "files", false, "add the squashed file table (path, mode, size, layer, digest) to json output; hashed files also become CycloneDX and SPDX file entries")
	return cmd
}

func checkFormat(format string, formats []string) error {
	for _, f := range formats {
		if f == format {
			return nil
		}
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(formats, ", "))
}

// buildSBOM opens the source and catalogs it.
func buildSBOM(cmd *cobra.Command, g *globalOptions, source string, o imageOptions, files bool) (*sbom.SBOM, error) {
	opts := o.imageOpts(g)
	digests, err := parseDigests(o.fileDigests)
	if err != nil {
		return nil, err
	}
	if !o.keepLayers {
		opts.Select, opts.SelectKey, opts.Digests = catalog.Selection(nil), catalog.SelectionKey, digests
	}
	img, err := image.Open(cmd.Context(), source, opts)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if files {
		if err := img.FS.FillDigests(cmd.Context(), digests); err != nil {
			return nil, fmt.Errorf("image %s: hashing files: %w", source, err)
		}
	}
	s, err := catalog.Image(cmd.Context(), img, catalog.Options{
		MaxFileSize: o.maxFileSize,
		TempDir:     o.cacheDir,
		Files:       files,
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", source, err)
	}
	if !g.quiet {
		for _, w := range s.Warnings {
			fmt.Fprintf(g.stderr, "warning: %s\n", w)
		}
	}
	return s, nil
}
