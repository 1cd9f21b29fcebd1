package catalog

import (
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func composerPkg(cataloger, name, version, purl, loc string, licenses ...string) sbom.Package {
	return sbom.Package{
		Name: name, Version: version, Type: sbom.TypeComposer, PURL: purl, Licenses: licenses,
		Locations: []sbom.Location{{Path: loc}}, Cataloger: cataloger,
	}
}

func TestComposerInstalledCataloger(t *testing.T) {
	const c = "php-composer-installed-cataloger"
	const v2, v1 = "/var/www/html/vendor/composer/installed.json", "/srv/legacy/vendor/composer/installed.json"
	want := []sbom.Package{
		composerPkg(c, "acme/internal-sdk", "dev-main", "pkg:composer/acme/internal-sdk@dev-main", v2, "proprietary"),
		composerPkg(c, "guzzlehttp/psr7", "2.6.1", "pkg:composer/guzzlehttp/psr7@2.6.1", v2, "MIT"),
		composerPkg(c, "laravel/framework", "v5.8.38", "pkg:composer/laravel/framework@v5.8.38", v1, "MIT"),
		composerPkg(c, "monolog/monolog", "3.4.0", "pkg:composer/monolog/monolog@3.4.0", v2, "MIT"),
		composerPkg(c, "phpunit/phpunit", "10.3.5", "pkg:composer/phpunit/phpunit@10.3.5", v2, "BSD-3-Clause"),
		composerPkg(c, "swiftmailer/swiftmailer", "v6.2.7", "pkg:composer/swiftmailer/swiftmailer@v6.2.7", v1, "MIT"),
		composerPkg(c, "symfony/console", "v6.3.4", "pkg:composer/symfony/console@v6.3.4", v2, "MIT"),
	}
	got, warnings := runLangFixture(t, "testdata/composer", nil, composerInstalledCataloger())
	assertLangPackages(t, got, want)
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
}

func TestComposerLockCataloger(t *testing.T) {
	const c = "php-composer-lock-cataloger"
	const loc = "/opt/tool/composer.lock"
	want := []sbom.Package{
		composerPkg(c, "psr/log", "3.0.0", "pkg:composer/psr/log@3.0.0", loc, "MIT"),
		composerPkg(c, "symfony/polyfill-mbstring", "v1.28.0", "pkg:composer/symfony/polyfill-mbstring@v1.28.0", loc, "MIT"),
		composerPkg(c, "twig/twig", "v3.7.1", "pkg:composer/twig/twig@v3.7.1", loc, "BSD-3-Clause"),
	}
	got, warnings := runLangFixture(t, "testdata/composer", nil, composerLockCataloger())
	assertLangPackages(t, got, want)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "/srv/broken/composer.lock:3: record does not parse: unexpected EOF") {
		t.Errorf("warnings = %q, want one about /srv/broken/composer.lock", warnings)
	}
}

func TestComposerPackagesOddNames(t *testing.T) {
	got := composerPackages([]composerPackage{
		{Name: "plain", Version: "1.0"},
		{Name: "vendor/", Version: "1.0"},
		{Name: "a/b/c", Version: "1.0"},
		{Name: "x/y"},
	}, sbom.Location{})
	var purls []string
	for _, p := range got {
		purls = append(purls, p.PURL)
	}
	if want := "pkg:composer/plain@1.0 pkg:composer/a/b%2Fc@1.0"; strings.Join(purls, " ") != want {
		t.Errorf("purls = %q, want %q", purls, want)
	}
}

func FuzzParseComposerInstalled(f *testing.F) {
	langSeeds(f, "testdata/composer", func(p string) bool { return strings.HasSuffix(p, "installed.json") })
	f.Add([]byte(`[{"name":"a/b","version":"1","license":{"x":1}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := composerInstalledPackages(data, sbom.Location{})
		if err != nil {
			return
		}
		checkComposerPackages(t, pkgs)
	})
}

func FuzzParseComposerLock(f *testing.F) {
	langSeeds(f, "testdata/composer", func(p string) bool { return strings.HasSuffix(p, "composer.lock") })
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := composerLockPackages(data, sbom.Location{})
		if err != nil {
			return
		}
		checkComposerPackages(t, pkgs)
	})
}

func checkComposerPackages(t *testing.T, pkgs []sbom.Package) {
	t.Helper()
	for _, p := range pkgs {
		if p.Name == "" || p.Version == "" || !strings.HasPrefix(p.PURL, "pkg:composer/") {
			t.Errorf("bad package %+v", p)
		}
		for _, l := range p.Licenses {
			if l == "" {
				t.Errorf("empty license in %q", p.Licenses)
			}
		}
	}
}
