package catalog

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// dotnetDepsCataloger reads the APP.deps.json that dotnet publish writes
// beside an application: its "libraries" are the NuGet packages the
// application runs with.
func dotnetDepsCataloger() Cataloger {
	return fileCataloger{
		name:  "dotnet-deps-cataloger",
		match: hasSuffix(".deps.json"),
		parse: parseDotnetDeps,
	}
}

func parseDotnetDeps(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	return dotnetDepsPackages(data, in.Location(n))
}

// dotnetDepsPackages lists the libraries of type "package", keyed
// "Name/Version". Type "project" is the application itself or a project it
// references, and "runtimepack" the runtime of a self-contained application.
func dotnetDepsPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	var deps struct {
		Libraries map[string]struct {
			Type string `json:"type"`
		} `json:"libraries"`
	}
	if err := json.Unmarshal(data, &deps); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(deps.Libraries))
	for k := range deps.Libraries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []sbom.Package
	for _, k := range keys {
		if deps.Libraries[k].Type != "package" {
			continue
		}
		i := strings.LastIndex(k, "/")
		if i <= 0 || i == len(k)-1 {
			continue
		}
		name, version := k[:i], k[i+1:]
		out = append(out, sbom.Package{
			Name: name, Version: version, Type: sbom.TypeDotnet,
			PURL:      purl("nuget", "", name, version),
			Locations: []sbom.Location{loc},
		})
	}
	return out, nil
}
