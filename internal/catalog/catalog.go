package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/image"
	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// DefaultMaxFileSize bounds any one file a cataloger reads into memory.
const DefaultMaxFileSize = 512 << 20

// Cataloger finds packages of one kind.
type Cataloger interface {
	Name() string
	Catalog(ctx context.Context, in *Input) ([]sbom.Package, error)
}

// All lists the built-in catalogers in the order they run.
func All() []Cataloger {
	return []Cataloger{
		dpkgCataloger(),
		dpkgDistrolessCataloger(),
		apkCataloger(),
		rpmCataloger(),
		binaryCataloger{},
		npmPackageCataloger(),
		npmLockCataloger(),
		pythonCataloger(),
		javaCataloger(),
		cargoLockCataloger(),
		gemspecCataloger(),
		gemfileLockCataloger(),
		composerInstalledCataloger(),
		composerLockCataloger(),
		dotnetDepsCataloger(),
	}
}

// Options tune a cataloging run.
type Options struct {
	// MaxFileSize bounds the bytes read from any one file; zero means
	// DefaultMaxFileSize.
	MaxFileSize int64
	// TempDir is where a cataloger may copy a file that its parser can only
	// read from disk (the rpm database). Empty means os.TempDir.
	TempDir string
	// Files adds the squashed file table to the SBOM.
	Files bool
	// Catalogers overrides All.
	Catalogers []Cataloger
}

// Input is what a cataloger reads: the files, the distro, and a way to warn.
type Input struct {
	FS          *layerfs.FS
	Distro      *sbom.Distro
	MaxFileSize int64
	TempDir     string

	mu       sync.Mutex
	warnings []string
	problems []sbom.Problem
}

// Warnf records a problem that does not stop the inventory.
func (in *Input) Warnf(format string, args ...any) {
	in.mu.Lock()
	in.warnings = append(in.warnings, fmt.Sprintf(format, args...))
	in.mu.Unlock()
}

// Location describes node n as package evidence.
func (in *Input) Location(n *layerfs.Node) sbom.Location {
	return sbom.Location{Path: n.Path, Layer: in.FS.LayerID(n.Layer)}
}

// Read reads a regular file node, bounded by MaxFileSize.
func (in *Input) Read(n *layerfs.Node) ([]byte, error) {
	return in.FS.ReadNode(n, in.MaxFileSize)
}

// Files returns the regular files whose path satisfies match, in path order.
func (in *Input) Files(match func(path string) bool) []*layerfs.Node {
	var out []*layerfs.Node
	for _, n := range in.FS.Files() {
		if n.IsRegular() && match(n.Path) {
			out = append(out, n)
		}
	}
	return out
}

// Image catalogs an opened image into an SBOM.
func Image(ctx context.Context, img *image.Image, opts Options) (*sbom.SBOM, error) {
	now, err := created()
	if err != nil {
		return nil, err
	}
	in := &Input{FS: img.FS, MaxFileSize: opts.MaxFileSize, TempDir: opts.TempDir}
	if in.MaxFileSize <= 0 {
		in.MaxFileSize = DefaultMaxFileSize
	}
	distro, err := readOSRelease(in)
	if err != nil {
		return nil, err
	}
	in.Distro = distro
	pkgs, err := Run(ctx, in, opts.Catalogers)
	if err != nil {
		return nil, err
	}
	s := &sbom.SBOM{
		Schema:   sbom.SchemaVersion,
		Created:  now,
		Source:   img.Source,
		Distro:   distro,
		Packages: pkgs,
		Warnings: in.warnings,
	}
	for _, p := range in.problems {
		s.AddProblem(p)
	}
	if opts.Files {
		s.Files = fileTable(img.FS)
	}
	s.Sort()
	slices.Sort(s.Warnings)
	return s, nil
}

// created is the document time: now, or SOURCE_DATE_EPOCH when set, so that
// a pipeline can produce byte-identical SBOMs of the same image. A value
// that is not a number is an error, as reproducible-builds.org asks: it
// was ignored, and the SBOMs differed with nothing said.
func created() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading SOURCE_DATE_EPOCH %q: want whole seconds since 1970-01-01 UTC", s)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

// Run runs the catalogers (All when nil) in parallel over in.
func Run(ctx context.Context, in *Input, catalogers []Cataloger) ([]sbom.Package, error) {
	if catalogers == nil {
		catalogers = All()
	}
	in.FS.Files() // build the sorted file list once, before the goroutines
	results := make([][]sbom.Package, len(catalogers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, c := range catalogers {
		g.Go(func() (err error) {
			defer recovered(&err, c.Name(), in, nil) // a cataloger's bug is one scan's failure, not the process's
			pkgs, err := c.Catalog(ctx, in)
			if err != nil {
				return fmt.Errorf("cataloging %s: %w", c.Name(), err)
			}
			for j := range pkgs {
				pkgs[j].Cataloger = c.Name()
				if pkgs[j].Layer == "" && len(pkgs[j].Locations) > 0 {
					pkgs[j].Layer = pkgs[j].Locations[0].Layer
				}
			}
			results[i] = pkgs
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return slices.Concat(results...), nil
}

// fileCataloger is the common cataloger: every regular file whose path
// matches is read and parsed on its own.
type fileCataloger struct {
	name  string
	match func(path string) bool
	parse func(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error)
}

func (c fileCataloger) Name() string { return c.name }

func (c fileCataloger) Catalog(ctx context.Context, in *Input) ([]sbom.Package, error) {
	var out []sbom.Package
	for _, n := range in.Files(c.match) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := in.Read(n)
		if err != nil {
			in.Problem(c.name, n, 0, fmt.Errorf("skipping the file: %w", err))
			continue
		}
		pkgs, err := c.parseFile(in, n, data)
		var skipped recordErrors
		var panicked *PanicError
		switch {
		case errors.As(err, &panicked):
			return nil, err
		case errors.As(err, &skipped):
			for _, r := range skipped {
				in.Problem(c.name, n, r.Line, r)
			}
		case err != nil:
			in.Problem(c.name, n, errorLine(data, err), err)
			continue
		}
		out = append(out, pkgs...)
	}
	return out, nil
}

// parseFile is c.parse, a panic in it a *PanicError naming n.
func (c fileCataloger) parseFile(in *Input, n *layerfs.Node, data []byte) (_ []sbom.Package, err error) {
	defer recovered(&err, c.name, in, n)
	return c.parse(in, n, data)
}

// hasSuffix and friends keep matchers one readable line each.
func hasSuffix(suffixes ...string) func(string) bool {
	return func(p string) bool {
		for _, s := range suffixes {
			if strings.HasSuffix(p, s) {
				return true
			}
		}
		return false
	}
}

func fileTable(fsys *layerfs.FS) []sbom.File {
	nodes := fsys.Files()
	out := make([]sbom.File, 0, len(nodes))
	for _, n := range nodes {
		f := sbom.File{Path: n.Path, Mode: fmt.Sprintf("%04o", n.Mode.Perm()), Size: n.Size, Linkname: n.Linkname, Layer: fsys.LayerID(n.Layer), Digest: n.Digest}
		switch {
		case n.IsDir():
			f.Type = "dir"
		case n.IsSymlink():
			f.Type = "symlink"
		case n.IsRegular():
			f.Type = "file"
		default:
			f.Type = "other"
		}
		out = append(out, f)
	}
	return out
}
