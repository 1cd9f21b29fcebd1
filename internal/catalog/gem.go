package catalog

import (
	"bytes"
	"cmp"
	"errors"
	"path"
	"regexp"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// gemspecCataloger reads installed gems: the specification RubyGems writes
// for each, GEM_HOME/specifications/NAME-VERSION.gemspec, and Ruby's default
// gems in specifications/default/.
func gemspecCataloger() Cataloger {
	return fileCataloger{
		name:  "ruby-installed-gemspec-cataloger",
		match: isInstalledGemspec,
		parse: parseGemspec,
	}
}

func isInstalledGemspec(p string) bool {
	if !strings.HasSuffix(p, ".gemspec") {
		return false
	}
	dir := path.Dir(p)
	if path.Base(dir) == "default" {
		dir = path.Dir(dir)
	}
	return path.Base(dir) == "specifications"
}

// gemfileLockCataloger reads Bundler's Gemfile.lock: the gems of its GEM
// sections (gems from GIT and PATH sources are left out).
func gemfileLockCataloger() Cataloger {
	return fileCataloger{
		name:  "ruby-gemfile-lock-cataloger",
		match: func(p string) bool { return path.Base(p) == "Gemfile.lock" },
		parse: parseGemfileLock,
	}
}

func gemPackage(name, version, platform string, licenses []string, loc sbom.Location) sbom.Package {
	if platform == "ruby" {
		platform = ""
	}
	return sbom.Package{
		Name: name, Version: version, Type: sbom.TypeGem,
		PURL:      purl("gem", "", name, version, "platform", platform),
		Licenses:  licenses,
		Locations: []sbom.Location{loc},
	}
}

func parseGemspec(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	p, err := gemspecPackage(data, in.Location(n))
	if err != nil {
		return nil, err
	}
	return []sbom.Package{p}, nil
}

// gemSpecVar finds the block variable of "Gem::Specification.new do |s|".
var gemSpecVar = regexp.MustCompile(`Gem::Specification\.new\s*(?:do|\{)\s*\|\s*(\w+)\s*\|`)

// gemspecPackage reads the assignments that RubyGems writes, one a line:
//
//	s.name = "rake".freeze
//	s.version = "13.0.6"
//	s.licenses = ["MIT".freeze]
//
// (older RubyGems wrote %q{rake}). The Ruby is not run: only string literals
// on the right of name, version, platform, license and licenses are read.
func gemspecPackage(data []byte, loc sbom.Location) (sbom.Package, error) {
	v := "s"
	if m := gemSpecVar.FindSubmatch(data); m != nil {
		v = string(m[1])
	}
	var name, version, platform string
	var licenses []string
	for line := range bytes.Lines(data) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(string(line)), v+".")
		if !ok {
			continue
		}
		field, rhs, ok := strings.Cut(rest, "=")
		if !ok || strings.HasPrefix(rhs, "=") {
			continue // not an assignment (==)
		}
		vals := rubyStrings(rhs)
		if len(vals) == 0 {
			continue
		}
		switch strings.TrimSpace(field) {
		case "name":
			name = cmp.Or(name, vals[0])
		case "version":
			version = cmp.Or(version, vals[0])
		case "platform":
			platform = cmp.Or(platform, vals[0])
		case "license", "licenses":
			if licenses == nil {
				licenses = vals
			}
		}
	}
	if name == "" || version == "" {
		return sbom.Package{}, errors.New("no name or version assignment")
	}
	return gemPackage(name, version, platform, licenses, loc), nil
}

// rubyStrings returns the non-empty string literals in a line of Ruby:
// "double", 'single' and %q{percent} quoted, in order, up to a # comment.
func rubyStrings(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		var closing byte
		switch {
		case s[i] == '#':
			return out
		case s[i] == '"' || s[i] == '\'':
			closing = s[i]
		case strings.HasPrefix(s[i:], "%q") || strings.HasPrefix(s[i:], "%Q"):
			if i+2 >= len(s) {
				return out
			}
			closing = map[byte]byte{'{': '}', '(': ')', '[': ']', '<': '>'}[s[i+2]]
			if closing == 0 {
				closing = s[i+2]
			}
			i += 2
		default:
			continue
		}
		var b strings.Builder
		j := i + 1
		for ; j < len(s) && s[j] != closing; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
		}
		if j >= len(s) {
			return out // unterminated
		}
		if b.Len() > 0 {
			out = append(out, b.String())
		}
		i = j
	}
	return out
}

func parseGemfileLock(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	return gemfileLockPackages(data, in.Location(n))
}

// gemfileLockPackages reads the "specs:" of each GEM section:
//
//	GEM
//	  remote: https://rubygems.org/
//	  specs:
//	    nokogiri (1.15.4-x86_64-linux)
//	      racc (~> 1.4)
//
// A gem is at four spaces, as "name (version)" or "name (version-platform)"
// (Bundler splits at the first dash); deeper lines are its dependencies.
func gemfileLockPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	var out []sbom.Package
	var bad recordErrors
	section, inSpecs := "", false
	lineNo := 0
	for raw := range bytes.Lines(data) {
		lineNo++
		line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case indent == 0:
			section, inSpecs = line, false
		case indent == 2:
			inSpecs = line == "  specs:"
		case indent == 4 && section == "GEM" && inSpecs:
			name, rest, ok := strings.Cut(line[4:], " (")
			if !ok || name == "" || !strings.HasSuffix(rest, ")") || strings.ContainsAny(name, " ()") {
				bad.add(lineNo, "not a \"name (version)\" line: %q", line)
				continue
			}
			version, platform, _ := strings.Cut(strings.TrimSuffix(rest, ")"), "-")
			if version == "" {
				bad.add(lineNo, "no version: %q", line)
				continue
			}
			out = append(out, gemPackage(name, version, platform, nil, loc))
		}
	}
	return out, bad.err()
}
