package catalog

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// composerInstalledCataloger reads what Composer installed into a vendor
// directory: vendor/composer/installed.json.
func composerInstalledCataloger() Cataloger {
	return fileCataloger{
		name:  "php-composer-installed-cataloger",
		match: func(p string) bool { return strings.HasSuffix(p, "/vendor/composer/installed.json") },
		parse: parseComposerInstalled,
	}
}

// composerLockCataloger reads composer.lock where no vendor/composer/
// installed.json sits beside it: when one does, it tells what is installed
// and the lock adds nothing. Development packages ("packages-dev") are left
// out, as composer install --no-dev leaves them.
func composerLockCataloger() Cataloger {
	return fileCataloger{
		name:  "php-composer-lock-cataloger",
		match: func(p string) bool { return path.Base(p) == "composer.lock" && !strings.Contains(p, "/vendor/") },
		parse: parseComposerLock,
	}
}

// composerPackage is one entry of installed.json or composer.lock.
type composerPackage struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	License composerLicense `json:"license"`
}

// composerLicense accepts "MIT" as well as the usual ["MIT"].
type composerLicense []string

func (l *composerLicense) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "" {
			*l = composerLicense{s}
		}
		return nil
	}
	var list []string
	if json.Unmarshal(b, &list) == nil {
		for _, s := range list {
			if s != "" {
				*l = append(*l, s)
			}
		}
	}
	return nil // a malformed license is not worth losing the package over
}

func parseComposerInstalled(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	return composerInstalledPackages(data, in.Location(n))
}

// composerInstalledPackages reads installed.json: a list of packages
// (Composer 1) or an object whose "packages" is that list (Composer 2).
func composerInstalledPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	key := "packages"
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		key = ""
	}
	return composerRecords(data, key, loc)
}

func parseComposerLock(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	if _, err := in.FS.Lstat(path.Join(path.Dir(n.Path), "vendor/composer/installed.json")); err == nil {
		return nil, nil
	}
	return composerLockPackages(data, in.Location(n))
}

func composerLockPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	return composerRecords(data, "packages", loc)
}

// composerRecords reads the package list under key ("" for a document that
// is the list), a damaged entry costing that entry only.
func composerRecords(data []byte, key string, loc sbom.Location) ([]sbom.Package, error) {
	recs, bad, err := jsonRecords(data, key)
	if err != nil {
		return nil, err
	}
	list := make([]composerPackage, 0, len(recs))
	for _, r := range recs {
		var p composerPackage
		if err := json.Unmarshal(r.Value, &p); err != nil {
			bad.add(r.Line, "%v", err)
			continue
		}
		if p.Name == "" || p.Version == "" {
			bad.add(r.Line, "an entry without a name or version")
			continue
		}
		list = append(list, p)
	}
	return composerPackages(list, loc), bad.err()
}

// composerPackages turns "vendor/name" packages into purls
// pkg:composer/vendor/name@version; the version is kept as written ("v6.3.1",
// "dev-main").
func composerPackages(list []composerPackage, loc sbom.Location) []sbom.Package {
	var out []sbom.Package
	for _, p := range list {
		if p.Name == "" || p.Version == "" {
			continue
		}
		ns, name, ok := strings.Cut(p.Name, "/")
		if !ok {
			ns, name = "", p.Name
		}
		if name == "" {
			continue
		}
		out = append(out, sbom.Package{
			Name: p.Name, Version: p.Version, Type: sbom.TypeComposer,
			PURL:      purl("composer", ns, name, p.Version),
			Licenses:  p.License,
			Locations: []sbom.Location{loc},
		})
	}
	return out
}
