package catalog

import (
	"path"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// cargoLockCataloger reads Cargo.lock files (all lockfile versions share the
// [[package]] tables). Rust binaries built with cargo-auditable are read by
// the binary cataloger instead.
func cargoLockCataloger() Cataloger {
	return fileCataloger{
		name:  "rust-cargo-lock-cataloger",
		match: func(p string) bool { return path.Base(p) == "Cargo.lock" },
		parse: parseCargoLock,
	}
}

func parseCargoLock(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	return cargoLockPackages(data, in.Location(n))
}

// cargoLockPackages lists the crates that come from a registry or a git
// repository. Path dependencies and the workspace's own crates have no
// source and are left out: they are the project, not its dependencies.
//
// Each [[package]] table is parsed on its own, so that a damaged one costs
// that crate only: a table starts at a line that opens one ("[" in the
// first column) and runs to the next.
func cargoLockPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	var out []sbom.Package
	var bad recordErrors
	lines := splitLines(data)
	var starts []int
	for k, l := range lines {
		if strings.HasPrefix(l.text, "[") {
			starts = append(starts, k)
		}
	}
	for i, k := range starts {
		if strings.TrimSpace(lines[k].text) != "[[package]]" {
			continue // [metadata], [[patch.unused]]
		}
		last := len(lines)
		if i+1 < len(starts) {
			last = starts[i+1]
		}
		var table struct {
			Package []struct {
				Name    string `toml:"name"`
				Version string `toml:"version"`
				Source  string `toml:"source"`
			} `toml:"package"`
		}
		if err := toml.Unmarshal(data[lines[k].off:lines[last-1].end], &table); err != nil {
			bad.add(k+1, "%v", err) // "toml: line 3 (last key "package.name"): ..." counts from k+1
			continue
		}
		for _, p := range table.Package {
			switch {
			case p.Name == "" || p.Version == "":
				bad.add(k+1, "a package without a name or version")
			case p.Source != "":
				out = append(out, rustCrate(p.Name, p.Version, p.Source, loc))
			}
		}
	}
	return out, bad.err()
}
