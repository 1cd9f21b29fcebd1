package catalog

import (
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func TestDotnetDepsCataloger(t *testing.T) {
	pkg := func(name, version, loc string) sbom.Package {
		return sbom.Package{
			Name: name, Version: version, Type: sbom.TypeDotnet, PURL: "pkg:nuget/" + name + "@" + version,
			Locations: []sbom.Location{{Path: loc}}, Cataloger: "dotnet-deps-cataloger",
		}
	}
	const app, worker = "/app/WeatherApi.deps.json", "/opt/worker/Worker.deps.json"
	want := []sbom.Package{
		pkg("Microsoft.AspNetCore.OpenApi", "8.0.0", app),
		pkg("Microsoft.OpenApi", "1.4.3", app),
		pkg("Newtonsoft.Json", "13.0.3", app),
		pkg("Polly", "8.2.0", worker),
		pkg("Polly.Core", "8.2.0", worker),
		pkg("Serilog.AspNetCore", "8.0.0", app),
	}
	got, warnings := runLangFixture(t, "testdata/dotnet", nil, dotnetDepsCataloger())
	assertLangPackages(t, got, want)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "/srv/broken/Broken.deps.json:3: record does not parse") {
		t.Errorf("warnings = %q, want one about /srv/broken/Broken.deps.json", warnings)
	}
}

func TestDotnetDepsOddKeys(t *testing.T) {
	got, err := dotnetDepsPackages([]byte(`{"libraries": {"/1.0": {"type": "package"}, "NoVersion/": {"type": "package"}, "NoSlash": {"type": "package"}, "A/B/2.0": {"type": "package"}, "Rt/8.0.0": {"type": "runtimepack"}}}`), sbom.Location{})
	if bad, ok := err.(recordErrors); !ok || len(bad) != 3 {
		t.Errorf("err = %v, want the three keys that are not NAME/VERSION", err)
	}
	if len(got) != 1 || got[0].Name != "A/B" || got[0].Version != "2.0" {
		t.Errorf("got %+v, want only A/B 2.0", got)
	}
}

func FuzzParseDotnetDeps(f *testing.F) {
	langSeeds(f, "testdata/dotnet", func(p string) bool { return strings.HasSuffix(p, ".deps.json") })
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := dotnetDepsPackages(data, sbom.Location{})
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || !strings.HasPrefix(p.PURL, "pkg:nuget/") {
				t.Errorf("bad package %+v", p)
			}
		}
	})
}
