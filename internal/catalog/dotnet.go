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
	recs, bad, err := jsonRecords(data, "libraries")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b jsonRecord) int { return strings.Compare(a.Key, b.Key) })
	var out []sbom.Package
	for _, r := range recs {
		var lib struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(r.Value, &lib); err != nil {
			bad.add(r.Line, "library %q: %v", r.Key, err)
			continue
		}
		if lib.Type != "package" {
			continue
		}
		i := strings.LastIndex(r.Key, "/")
		if i <= 0 || i == len(r.Key)-1 {
			bad.add(r.Line, "library %q is not NAME/VERSION", r.Key)
			continue
		}
		name, version := r.Key[:i], r.Key[i+1:]
		out = append(out, sbom.Package{
			Name: name, Version: version, Type: sbom.TypeDotnet,
			PURL:      purl("nuget", "", name, version),
			Locations: []sbom.Location{loc},
		})
	}
	return out, bad.err()
}
