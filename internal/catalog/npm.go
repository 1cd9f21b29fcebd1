package catalog

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// npmPackageCataloger reads installed packages: every
// node_modules/NAME/package.json and node_modules/@SCOPE/NAME/package.json.
func npmPackageCataloger() Cataloger {
	return fileCataloger{
		name:  "npm-package-cataloger",
		match: isInstalledNPMManifest,
		parse: parseNPMPackageJSON,
	}
}

func isInstalledNPMManifest(p string) bool {
	if path.Base(p) != "package.json" {
		return false
	}
	dir := path.Dir(p)
	parent := path.Dir(dir)
	if strings.HasPrefix(path.Base(parent), "@") {
		parent = path.Dir(parent)
	}
	return path.Base(parent) == "node_modules"
}

// npmLicense accepts the three shapes of package.json licenses: "MIT",
// {"type": "MIT"} and [{"type": "MIT"}, ...].
type npmLicense []string

func (l *npmLicense) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "" {
			*l = npmLicense{s}
		}
		return nil
	}
	var obj struct{ Type string }
	if json.Unmarshal(b, &obj) == nil {
		if obj.Type != "" {
			*l = npmLicense{obj.Type}
		}
		return nil
	}
	var list []struct{ Type string }
	if json.Unmarshal(b, &list) == nil {
		for _, o := range list {
			if o.Type != "" {
				*l = append(*l, o.Type)
			}
		}
	}
	return nil // a malformed license is not worth losing the package over
}

func parseNPMPackageJSON(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	var m struct {
		Name     string     `json:"name"`
		Version  string     `json:"version"`
		License  npmLicense `json:"license"`
		Licenses npmLicense `json:"licenses"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m.Name == "" || m.Version == "" {
		return nil, nil // a nested package.json that only sets "type", say
	}
	return []sbom.Package{npmPackage(m.Name, m.Version, slices.Concat(m.License, m.Licenses), in.Location(n))}, nil
}

func npmPackage(name, version string, licenses []string, loc sbom.Location) sbom.Package {
	ns, base := "", name
	if strings.HasPrefix(name, "@") {
		if i := strings.Index(name, "/"); i > 0 {
			ns, base = name[:i], name[i+1:]
		}
	}
	return sbom.Package{
		Name: name, Version: version, Type: sbom.TypeNPM,
		PURL:      purl("npm", ns, base, version),
		Licenses:  licenses,
		Locations: []sbom.Location{loc},
	}
}

// npmLockCataloger reads package-lock.json (lockfile v1, v2 and v3) where no
// node_modules directory sits beside it: when one does, the installed
// package.json files are the better evidence and the lock adds nothing.
// Development dependencies are left out, as npm ci --omit=dev leaves them.
func npmLockCataloger() Cataloger {
	return fileCataloger{
		name: "npm-lock-cataloger",
		match: func(p string) bool {
			b := path.Base(p)
			return (b == "package-lock.json" || b == "npm-shrinkwrap.json") && !strings.Contains(p, "/node_modules/")
		},
		parse: parseNPMLock,
	}
}

type npmLockEntry struct {
	Version string     `json:"version"`
	Dev     bool       `json:"dev"`
	Link    bool       `json:"link"`
	License npmLicense `json:"license"`
	// Dependencies nests entries in lockfile v1; in v2 and v3 it maps names
	// to version ranges, which the cataloger does not need.
	Dependencies json.RawMessage `json:"dependencies"`
}

func parseNPMLock(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	if nm, err := in.FS.Lstat(path.Join(path.Dir(n.Path), "node_modules")); err == nil && nm.IsDir() {
		return nil, nil
	}
	var lock struct {
		LockfileVersion int                     `json:"lockfileVersion"`
		Packages        map[string]npmLockEntry `json:"packages"`
		Dependencies    json.RawMessage         `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, err
	}
	loc := in.Location(n)
	var out []sbom.Package
	switch {
	case lock.Packages != nil: // v2, v3
		for key, e := range lock.Packages {
			i := strings.LastIndex(key, "node_modules/")
			if i < 0 || e.Dev || e.Link || e.Version == "" {
				continue
			}
			if name := key[i+len("node_modules/"):]; name != "" {
				out = append(out, npmPackage(name, e.Version, e.License, loc))
			}
		}
	case len(lock.Dependencies) > 0: // v1: nested dependencies
		var walk func(json.RawMessage, int) error
		walk = func(raw json.RawMessage, depth int) error {
			if depth > 64 {
				return fmt.Errorf("dependencies nest deeper than 64 levels")
			}
			if len(raw) == 0 {
				return nil
			}
			var deps map[string]npmLockEntry
			if err := json.Unmarshal(raw, &deps); err != nil {
				return fmt.Errorf("parsing dependencies: %w", err)
			}
			for name, e := range deps {
				if name != "" && !e.Dev && e.Version != "" && !strings.HasPrefix(e.Version, "file:") {
					out = append(out, npmPackage(name, e.Version, nil, loc))
				}
				if err := walk(e.Dependencies, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		if err := walk(lock.Dependencies, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}
