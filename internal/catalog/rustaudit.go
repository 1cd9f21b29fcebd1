package catalog

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// rustAuditPackages reads the zlib-compressed JSON dependency list that
// cargo-auditable embeds in the .dep-v0 section.
func rustAuditPackages(in *Input, n *layerfs.Node, sec *elf.Section) ([]sbom.Package, error) {
	if sec.Size > 8<<20 {
		return nil, fmt.Errorf(".dep-v0 section is %d bytes", sec.Size)
	}
	zr, err := zlib.NewReader(sec.Open())
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	data, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, err
	}
	return parseRustAudit(data, in.Location(n))
}

func parseRustAudit(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	var doc struct {
		Packages []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Source  string `json:"source"`
			Kind    string `json:"kind"`
		} `json:"packages"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("parsing cargo-auditable JSON: %w", err)
	}
	var out []sbom.Package
	for _, p := range doc.Packages {
		if p.Name == "" || p.Version == "" || p.Kind == "build" {
			continue
		}
		out = append(out, rustCrate(p.Name, p.Version, p.Source, loc))
	}
	return out, nil
}

// rustCrate is a crate found in a Cargo.lock or a cargo-auditable binary.
func rustCrate(name, version, source string, loc sbom.Location) sbom.Package {
	return sbom.Package{
		Name: name, Version: version, Type: sbom.TypeRust,
		PURL:      purl("cargo", "", name, version),
		Locations: []sbom.Location{loc},
		Metadata:  map[string]string{"source": source},
	}
}
