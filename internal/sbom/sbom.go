package sbom

import (
	"cmp"
	"slices"
	"strconv"
	"time"
)

// SchemaVersion names the version of Bulwark's own JSON document. It changes
// only when a field changes meaning or goes away; new fields do not bump it.
const SchemaVersion = "bulwark.sbom/v1"

// SBOM is the inventory of one image: where it came from, which distribution
// it is built on, which packages it carries and (optionally) its file table.
type SBOM struct {
	Schema   string    `json:"schema"`
	Created  time.Time `json:"created"`
	Source   Source    `json:"source"`
	Distro   *Distro   `json:"distro,omitempty"`
	Packages []Package `json:"packages"`
	// Files is the squashed file table; filled only when asked for.
	Files []File `json:"files,omitempty"`
	// Warnings are problems that did not stop the inventory, such as an
	// unreadable package database. Each names the file and the layer.
	Warnings []string `json:"warnings,omitempty"`
	// Incomplete is true when a package database, a lock file or a package
	// manifest could not be read in whole: the packages of the records named
	// in Problems may be missing from Packages. It is decided on by the
	// inventory-complete policy rule and by scan --fail-on-incomplete.
	Incomplete bool `json:"incomplete,omitempty"`
	// Problems are the records that could not be read, each with its file,
	// line (when the format has lines) and layer.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one record (or whole file) of package evidence that could not
// be read: what it may hide is missing from the inventory.
type Problem struct {
	Cataloger string `json:"cataloger"`
	Path      string `json:"path"`
	// Line is the first line of the damaged record, 0 when the format has
	// no lines (rpm databases, archives) or the whole file is lost.
	Line    int    `json:"line,omitempty"`
	Layer   string `json:"layer,omitempty"`
	Message string `json:"message"`
}

// String is "CATALOGER: PATH:LINE (layer L): MESSAGE", without the parts
// that are not known.
func (p Problem) String() string {
	var s string
	if p.Cataloger != "" {
		s = p.Cataloger + ": "
	}
	if p.Path != "" {
		s += p.Path
		if p.Line > 0 {
			s += ":" + strconv.Itoa(p.Line)
		}
		if p.Layer != "" {
			s += " (layer " + p.Layer + ")"
		}
		s += ": "
	}
	return s + p.Message
}

// AddProblem records p and marks the inventory incomplete.
func (s *SBOM) AddProblem(p Problem) {
	s.Problems = append(s.Problems, p)
	s.Incomplete = true
}

// Source describes the scanned image.
type Source struct {
	// Input is the source as the user typed it.
	Input string `json:"input"`
	// Kind is registry, oci-layout, oci-archive, docker-archive or dir.
	Kind string `json:"kind"`
	// Name is the image reference (registry) or the path (local sources).
	Name string `json:"name"`
	// Digest is the manifest digest; empty for a plain directory.
	Digest   string  `json:"digest,omitempty"`
	ConfigID string  `json:"configDigest,omitempty"`
	Platform string  `json:"platform,omitempty"`
	Created  string  `json:"created,omitempty"`
	Layers   []Layer `json:"layers"`
}

// Layer is one filesystem layer, bottom first.
type Layer struct {
	Index int `json:"index"`
	// Digest is the digest of the layer blob as stored (often compressed).
	Digest string `json:"digest,omitempty"`
	// DiffID is the digest of the uncompressed tar; it names the layer in the
	// image config and in every package and file location.
	DiffID string `json:"diffID,omitempty"`
	Size   int64  `json:"size"`
	// CreatedBy is the history command that made the layer, when known.
	CreatedBy string `json:"createdBy,omitempty"`
}

// Distro is what /etc/os-release says.
type Distro struct {
	ID              string   `json:"id"`
	VersionID       string   `json:"versionID,omitempty"`
	VersionCodename string   `json:"versionCodename,omitempty"`
	PrettyName      string   `json:"prettyName,omitempty"`
	IDLike          []string `json:"idLike,omitempty"`
}

// Package types, named as Syft names them so that users of both can compare.
const (
	TypeDeb      = "deb"
	TypeAPK      = "apk"
	TypeRPM      = "rpm"
	TypeGo       = "go-module"
	TypeNPM      = "npm"
	TypePython   = "python"
	TypeJava     = "java-archive"
	TypeRust     = "rust-crate"
	TypeGem      = "gem"
	TypeComposer = "php-composer"
	TypeDotnet   = "dotnet"
)

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Type    string `json:"type"`
	PURL    string `json:"purl"`
	// Source is the source package a binary package was built from (dpkg,
	// apk origin, rpm source rpm). Distro advisories are keyed by it.
	Source    *SourcePackage `json:"source,omitempty"`
	Arch      string         `json:"arch,omitempty"`
	Licenses  []string       `json:"licenses,omitempty"`
	Locations []Location     `json:"locations"`
	// Layer is the diffID of the layer that introduced the package.
	Layer string `json:"layer,omitempty"`
	// Cataloger names the cataloger that found the package.
	Cataloger string `json:"foundBy"`
	// Metadata holds a few ecosystem-specific facts (Go toolchain of a
	// binary, main module, jar path...). Keys are documented in docs/json.md.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// SourcePackage names the source a binary package was built from.
type SourcePackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Location is a file that is evidence for a package.
type Location struct {
	Path string `json:"path"`
	// Layer is the diffID of the layer that last wrote the file.
	Layer string `json:"layer,omitempty"`
}

// File is one entry of the squashed file table.
type File struct {
	Path     string `json:"path"`
	Type     string `json:"type"`
	Mode     string `json:"mode"`
	Size     int64  `json:"size"`
	Linkname string `json:"linkname,omitempty"`
	Layer    string `json:"layer,omitempty"`
	// Digest is "sha256:HEX" of the content of executables, ELF files,
	// scripts and shared libraries (of every file with --file-digests all).
	Digest string `json:"digest,omitempty"`
}

// Sort orders packages by type, name, version and first location so that
// output is stable from run to run.
func (s *SBOM) Sort() {
	slices.SortFunc(s.Packages, func(a, b Package) int {
		return cmp.Or(
			cmp.Compare(a.Type, b.Type),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Version, b.Version),
			cmp.Compare(firstPath(a), firstPath(b)),
		)
	})
	slices.SortFunc(s.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Layer, b.Layer), cmp.Compare(a.Message, b.Message))
	})
}

func firstPath(p Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0].Path
}
