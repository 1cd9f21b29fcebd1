package catalog

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// binaryCataloger reads executables: the module list Go writes into every
// binary (runtime/debug.BuildInfo) and the dependency list cargo-auditable
// writes into Rust binaries (.dep-v0). Only ELF files with an executable bit
// are opened, and only their headers and those sections are read.
type binaryCataloger struct{}

func (binaryCataloger) Name() string { return "binary-cataloger" }

var elfMagic = []byte("\x7fELF")

func (binaryCataloger) Catalog(ctx context.Context, in *Input) ([]sbom.Package, error) {
	var candidates []*layerfs.Node
	for _, n := range in.FS.Files() {
		if n.IsRegular() && n.Mode.Perm()&0o111 != 0 && n.Size > 64 {
			candidates = append(candidates, n)
		}
	}
	var (
		mu  sync.Mutex
		out []sbom.Package
	)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, n := range candidates {
		g.Go(func() (err error) {
			defer recovered(&err, binaryCataloger{}.Name(), in, n)
			if err := ctx.Err(); err != nil {
				return err
			}
			pkgs := readBinary(in, n)
			if len(pkgs) > 0 {
				mu.Lock()
				out = append(out, pkgs...)
				mu.Unlock()
			}
			return nil
		})
	}
	return out, g.Wait()
}

func readBinary(in *Input, n *layerfs.Node) []sbom.Package {
	f, err := in.FS.Open(n)
	if err != nil {
		return nil
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || !bytes.Equal(magic[:], elfMagic) {
		return nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil // not an ELF we understand; nothing to report
	}
	defer ef.Close()
	var pkgs []sbom.Package
	if ef.Section(".go.buildinfo") != nil {
		if bi, err := buildinfo.Read(f); err == nil {
			pkgs = append(pkgs, goModules(in, n, bi)...)
		}
	}
	if sec := ef.Section(".dep-v0"); sec != nil {
		rust, err := rustAuditPackages(in, n, sec)
		if err != nil {
			in.Warnf("binary-cataloger: layer %s: reading cargo-auditable data of %s: %v", in.FS.LayerID(n.Layer), n.Path, err)
		}
		pkgs = append(pkgs, rust...)
	}
	return pkgs
}

// goModules lists a Go binary's main module, its dependencies (replacements
// applied) and the standard library at the toolchain version.
func goModules(in *Input, n *layerfs.Node, bi *debug.BuildInfo) []sbom.Package {
	loc := []sbom.Location{in.Location(n)}
	meta := map[string]string{"goToolchain": bi.GoVersion, "mainModule": bi.Main.Path}
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOARCH", "GOOS", "vcs.revision", "-buildmode":
			meta[strings.TrimPrefix(s.Key, "-")] = s.Value
		}
	}
	mod := func(m *debug.Module) sbom.Package {
		if m.Replace != nil {
			m = m.Replace
		}
		md := map[string]string{}
		for k, v := range meta {
			md[k] = v
		}
		if m.Sum != "" {
			md["h1Digest"] = m.Sum
		}
		return sbom.Package{
			Name: m.Path, Version: m.Version, Type: sbom.TypeGo,
			PURL:      goPURL(m.Path, m.Version),
			Locations: loc, Metadata: md,
		}
	}
	var out []sbom.Package
	if bi.Main.Path != "" {
		main := mod(&bi.Main)
		if main.Version == "(devel)" || main.Version == "" {
			if v := vcsPseudoVersion(bi); v != "" {
				main.Version, main.PURL = v, goPURL(bi.Main.Path, v)
			}
		}
		out = append(out, main)
	}
	for _, d := range bi.Deps {
		out = append(out, mod(d))
	}
	if bi.GoVersion != "" {
		v := bi.GoVersion
		if i := strings.IndexAny(v, " "); i > 0 { // "go1.22.1 X:boringcrypto"
			v = v[:i]
		}
		out = append(out, sbom.Package{
			Name: "stdlib", Version: v, Type: sbom.TypeGo,
			PURL:      purl("golang", "", "stdlib", strings.TrimPrefix(v, "go")),
			Locations: loc, Metadata: meta,
		})
	}
	return out
}

// vcsPseudoVersion builds a Go pseudo-version (v0.0.0-TIME-REVISION) from
// the VCS stamp of a binary built from a checkout, whose main module Go
// records as "(devel)"; Syft reports the same. It is empty without a stamp.
func vcsPseudoVersion(bi *debug.BuildInfo) string {
	var rev, when string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		}
	}
	t, err := time.Parse(time.RFC3339, when)
	if len(rev) < 12 || err != nil {
		return ""
	}
	return "v0.0.0-" + t.UTC().Format("20060102150405") + "-" + rev[:12]
}

// goPURL splits a module path into the purl namespace and name.
func goPURL(path, version string) string {
	ns, name := "", path
	if i := strings.LastIndex(path, "/"); i >= 0 {
		ns, name = path[:i], path[i+1:]
	}
	return purl("golang", ns, name, version)
}
