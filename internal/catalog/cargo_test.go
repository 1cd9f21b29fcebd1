package catalog

import (
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func TestCargoLockCataloger(t *testing.T) {
	const crates = "registry+https://github.com/rust-lang/crates.io-index"
	pkg := func(name, version, source, loc string) sbom.Package {
		return sbom.Package{
			Name: name, Version: version, Type: sbom.TypeRust, PURL: "pkg:cargo/" + name + "@" + version,
			Locations: []sbom.Location{{Path: loc}}, Cataloger: "rust-cargo-lock-cataloger",
			Metadata: map[string]string{"source": source},
		}
	}
	const app, tool = "/usr/src/app/Cargo.lock", "/opt/tool/Cargo.lock"
	want := []sbom.Package{
		pkg("acme-auth", "0.4.2", "sparse+https://cargo.cloudsmith.io/acme/internal/", tool),
		pkg("anyhow", "1.0.95", crates, tool),
		pkg("pin-project-lite", "0.2.13", crates, app),
		pkg("serde", "1.0.188", crates, app),
		pkg("serde_derive", "1.0.188", crates, app),
		pkg("tokio", "1.32.0", crates, app),
		pkg("tracing-subscriber", "0.3.17", "git+https://github.com/tokio-rs/tracing?branch=v0.1.x#a0126b2e2d465e8e6d514acdf128fcef5b8d0c2b", app),
	}
	got, warnings := runLangFixture(t, "testdata/cargo", nil, cargoLockCataloger())
	assertLangPackages(t, got, want)
	if j := strings.Join(warnings, "\n"); len(warnings) != 2 || !strings.Contains(j, "/opt/broken/Cargo.lock:3: version is not a string") || !strings.Contains(j, "/opt/broken/Cargo.lock:1: a package without a name or version") {
		t.Errorf("warnings = %q, want the bad line 3 and the package of line 1 in /opt/broken/Cargo.lock", warnings)
	}
}

func FuzzParseCargoLock(f *testing.F) {
	langSeeds(f, "testdata/cargo", func(p string) bool { return strings.HasSuffix(p, "Cargo.lock") })
	f.Add([]byte("package = 1\n"))
	f.Add([]byte("[[package]]\nname = [\"x\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := cargoLockPackages(data, sbom.Location{Path: "/Cargo.lock"})
		if _, partial := err.(recordErrors); err != nil && !partial {
			t.Fatalf("not a record error: %v", err)
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Metadata["source"] == "" || !strings.HasPrefix(p.PURL, "pkg:cargo/") {
				t.Errorf("bad package %+v", p)
			}
		}
	})
}
