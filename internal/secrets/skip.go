package secrets

import (
	"fmt"
	"path"
	"strings"
)

// DefaultSkipPaths are trees that hold no secrets but many look-alikes:
// documentation, translations, public CA certificates, and the test suites
// that language runtimes ship (full of deliberately published test keys).
// Options.SkipPaths adds to them.
var DefaultSkipPaths = []string{
	"/usr/share/doc",
	"/usr/share/man",
	"/usr/share/info",
	"/usr/share/locale",
	"/usr/share/i18n",
	"/usr/share/common-licenses",
	"/usr/share/zoneinfo",
	"/usr/share/ca-certificates",
	"/usr/local/share/ca-certificates",
	"/etc/ssl/certs",
	"/etc/ca-certificates",
	"/etc/pki/ca-trust",
	"/etc/pki/tls/certs",
	"/usr/lib/python3*/test",
	"/usr/local/lib/python3*/test",
	"/usr/lib/python2*/test",
	"/usr/local/go/src/**/testdata",
	"/usr/local/go/src/**/*_test.go",
	"/usr/local/go/test",
	"/usr/lib/go-*/src/**/testdata",
	"/usr/lib/go-*/src/**/*_test.go",
	"/usr/lib/go-*/test",
	"site-packages/**/test",
	"site-packages/**/tests",
	"dist-packages/**/test",
	"dist-packages/**/tests",
	"node_modules/**/test",
	"node_modules/**/tests",
	"node_modules/**/__tests__",
	"node_modules/**/*.md",
	"node_modules/**/*.markdown",
}

// globs matches absolute paths against path patterns:
//
//   - a pattern is split at "/" and each element is matched with path.Match
//     ("*", "?", "[...]" within one element), except "**", which matches any
//     number of elements;
//   - a pattern that does not start with "/" may match at any depth
//     ("node_modules/**/test" is "/**/node_modules/**/test");
//   - a pattern that matches a directory matches everything under it.
type globs [][]string

func compileGlobs(patterns []string) (globs, error) {
	var g globs
	for _, p := range patterns {
		p = strings.TrimSuffix(strings.TrimSpace(p), "/")
		if p == "" {
			continue
		}
		var elems []string
		if !strings.HasPrefix(p, "/") {
			elems = append(elems, "**")
		}
		for _, e := range strings.Split(strings.Trim(p, "/"), "/") {
			if e == "" {
				continue
			}
			if e != "**" {
				if _, err := path.Match(e, ""); err != nil {
					return nil, fmt.Errorf("parsing skip path %q: %w", p, err)
				}
			}
			elems = append(elems, e)
		}
		g = append(g, elems)
	}
	return g, nil
}

// match reports whether p (absolute, clean) or one of its parent
// directories matches a pattern.
func (g globs) match(p string) bool {
	if len(g) == 0 {
		return false
	}
	elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for _, pat := range g {
		if matchPrefix(pat, elems) {
			return true
		}
	}
	return false
}

// matchPrefix reports whether pat matches elems or a leading part of it.
func matchPrefix(pat, elems []string) bool {
	if len(pat) == 0 {
		return true
	}
	if pat[0] == "**" {
		for i := 0; i <= len(elems); i++ {
			if matchPrefix(pat[1:], elems[i:]) {
				return true
			}
		}
		return false
	}
	if len(elems) == 0 {
		return false
	}
	ok, _ := path.Match(pat[0], elems[0])
	return ok && matchPrefix(pat[1:], elems[1:])
}
