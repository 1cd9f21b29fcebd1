package catalog

import (
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

func TestGemspecCataloger(t *testing.T) {
	pkg := func(name, version, purl, loc string, licenses ...string) sbom.Package {
		return sbom.Package{
			Name: name, Version: version, Type: sbom.TypeGem, PURL: purl, Licenses: licenses,
			Locations: []sbom.Location{{Path: loc}}, Cataloger: "ruby-installed-gemspec-cataloger",
		}
	}
	const bundle = "/usr/local/bundle/specifications/"
	want := []sbom.Package{
		pkg("acme-client", "0.4.0", "pkg:gem/acme-client@0.4.0", bundle+"acme-client-0.4.0.gemspec", "Apache-2.0"),
		pkg("json", "2.6.3", "pkg:gem/json@2.6.3", "/usr/local/lib/ruby/gems/3.2.0/specifications/default/json-2.6.3.gemspec", "Ruby"),
		pkg("nokogiri", "1.15.4", "pkg:gem/nokogiri@1.15.4?platform=x86_64-linux", bundle+"nokogiri-1.15.4-x86_64-linux.gemspec", "MIT"),
		pkg("rack", "1.1.0", "pkg:gem/rack@1.1.0", "/var/lib/gems/1.8/specifications/rack-1.1.0.gemspec"),
		pkg("rake", "13.0.6", "pkg:gem/rake@13.0.6", bundle+"rake-13.0.6.gemspec", "MIT"),
	}
	got, warnings := runLangFixture(t, "testdata/gem", nil, gemspecCataloger())
	assertLangPackages(t, got, want)
	if len(warnings) != 1 || !strings.Contains(warnings[0], bundle+"broken-1.0.gemspec: no name or version") {
		t.Errorf("warnings = %q, want one about broken-1.0.gemspec", warnings)
	}
}

func TestGemfileLockCataloger(t *testing.T) {
	const loc = "/srv/app/Gemfile.lock"
	pkg := func(name, version string, platform ...string) sbom.Package {
		p := "pkg:gem/" + name + "@" + version
		if len(platform) > 0 {
			p += "?platform=" + platform[0]
		}
		return sbom.Package{
			Name: name, Version: version, Type: sbom.TypeGem, PURL: p,
			Locations: []sbom.Location{{Path: loc}}, Cataloger: "ruby-gemfile-lock-cataloger",
		}
	}
	want := []sbom.Package{
		pkg("actionpack", "7.0.8"),
		pkg("activesupport", "7.0.8"),
		pkg("concurrent-ruby", "1.2.2"),
		pkg("i18n", "1.14.1"),
		pkg("mini_portile2", "2.8.4"),
		pkg("nokogiri", "1.15.4", "x86_64-linux"),
		pkg("pg", "1.5.4"),
		pkg("racc", "1.7.1"),
		pkg("rack", "2.2.8"),
		pkg("tzinfo", "2.0.6"),
	}
	got, warnings := runLangFixture(t, "testdata/gem", nil, gemfileLockCataloger())
	assertLangPackages(t, got, want)
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
}

func TestIsInstalledGemspec(t *testing.T) {
	for p, want := range map[string]bool{
		"/usr/local/bundle/specifications/rake-13.0.6.gemspec":                      true,
		"/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec":        true,
		"/usr/local/bundle/gems/rake-13.0.6/rake.gemspec":                           false,
		"/usr/local/bundle/specifications/rake-13.0.6.gemspec.orig":                 false,
		"/usr/local/bundle/bundler/gems/acme-5b6f1c2a9e8d/specifications/x.gemspec": true,
	} {
		if got := isInstalledGemspec(p); got != want {
			t.Errorf("isInstalledGemspec(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestRubyStrings(t *testing.T) {
	for in, want := range map[string][]string{
		` "rake".freeze`:                      {"rake"},
		` ["MIT".freeze, "Ruby".freeze]`:      {"MIT", "Ruby"},
		` %q{rack}`:                           {"rack"},
		` %q<racc>.freeze, ["~> 1.4"]`:        {"racc", "~> 1.4"},
		` 'it\'s'`:                            {"it's"},
		` "a\"b" # "comment"`:                 {`a"b`},
		` "unterminated`:                      nil,
		` %q`:                                 nil,
		` ""`:                                 nil,
		` Gem::Version.new("1.0") if s.x "y"`: {"1.0", "y"},
	} {
		if got := rubyStrings(in); !slices.Equal(got, want) {
			t.Errorf("rubyStrings(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGemfileLockErrors(t *testing.T) {
	for _, data := range []string{
		"GEM\n  specs:\n    rake\n",
		"GEM\n  specs:\n    rake (13.0.6\n",
		"GEM\n  specs:\n    rake (-x86_64-linux)\n",
	} {
		if _, err := gemfileLockPackages([]byte(data), sbom.Location{}); err == nil {
			t.Errorf("gemfileLockPackages(%q): no error", data)
		}
	}
}

func FuzzParseGemspec(f *testing.F) {
	langSeeds(f, "testdata/gem", func(p string) bool { return strings.HasSuffix(p, ".gemspec") })
	f.Add([]byte("Gem::Specification.new { |x|\nx.name = %q(a)\nx.version = '1'\nx.licenses = %q"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := gemspecPackage(data, sbom.Location{Path: "/x.gemspec"})
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" || !strings.HasPrefix(p.PURL, "pkg:gem/") {
			t.Errorf("bad package %+v", p)
		}
		for _, l := range p.Licenses {
			if l == "" {
				t.Errorf("empty license in %q", p.Licenses)
			}
		}
	})
}

func FuzzParseGemfileLock(f *testing.F) {
	langSeeds(f, "testdata/gem", func(p string) bool { return strings.HasSuffix(p, "Gemfile.lock") })
	f.Add([]byte("GEM\r\n  specs:\r\n    a (1-b-c)\r\n      b (>= 1)\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := gemfileLockPackages(data, sbom.Location{Path: "/Gemfile.lock"})
		if _, partial := err.(recordErrors); err != nil && !partial {
			t.Fatalf("not a record error: %v", err)
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || !strings.HasPrefix(p.PURL, "pkg:gem/") {
				t.Errorf("bad package %+v", p)
			}
		}
	})
}
