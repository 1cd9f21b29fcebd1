package catalog

import (
	"path"

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
func cargoLockPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	var lock struct {
		Package []struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
			Source  string `toml:"source"`
		} `toml:"package"`
	}
	if err := toml.Unmarshal(data, &lock); err != nil {
		return nil, err // "toml: line 3 (last key "package.name"): ..."
	}
	var out []sbom.Package
	for _, p := range lock.Package {
		if p.Name == "" || p.Version == "" || p.Source == "" {
			continue
		}
		out = append(out, rustCrate(p.Name, p.Version, p.Source, loc))
	}
	return out, nil
}
