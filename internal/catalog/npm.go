package catalog

import (
	"encoding/json"
	"maps"
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
	return npmLockPackages(data, in.Location(n))
}

// npmLockPackages reads lockfile v2 and v3 "packages" (keyed by install
// path) or, when there is none, lockfile v1's nested "dependencies". A
// damaged entry costs that entry only (in v1, with what nests in it).
func npmLockPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	recs, bad, err := jsonRecords(data, "packages")
	if err != nil {
		return nil, err
	}
	var out []sbom.Package
	if recs != nil || bad != nil { // v2, v3
		for _, r := range recs {
			var e npmLockEntry
			if err := json.Unmarshal(r.Value, &e); err != nil {
				bad.add(r.Line, "entry %q: %v", r.Key, err)
				continue
			}
			i := strings.LastIndex(r.Key, "node_modules/")
			if i < 0 || e.Dev || e.Link || e.Version == "" {
				continue
			}
			if name := r.Key[i+len("node_modules/"):]; name != "" {
				out = append(out, npmPackage(name, e.Version, e.License, loc))
			}
		}
		return out, bad.err()
	}
	recs, bad, err = jsonRecords(data, "dependencies")
	if err != nil {
		return nil, err
	}
	// v1: nested dependencies, each level decoded entry by entry.
	var walk func(deps map[string]json.RawMessage, line, depth int)
	walk = func(deps map[string]json.RawMessage, line, depth int) {
		if depth > 64 {
			bad.add(line, "dependencies nest deeper than 64 levels")
			return
		}
		names := slices.Sorted(maps.Keys(deps))
		for _, name := range names {
			var e npmLockEntry
			if err := json.Unmarshal(deps[name], &e); err != nil {
				bad.add(line, "entry %q: %v", name, err)
				continue
			}
			if name != "" && !e.Dev && e.Version != "" && !strings.HasPrefix(e.Version, "file:") {
				out = append(out, npmPackage(name, e.Version, nil, loc))
			}
			if len(e.Dependencies) == 0 || string(e.Dependencies) == "null" {
				continue
			}
			var nested map[string]json.RawMessage
			if err := json.Unmarshal(e.Dependencies, &nested); err != nil {
				bad.add(line, "entry %q: dependencies: %v", name, err)
				continue
			}
			walk(nested, line, depth+1)
		}
	}
	for _, r := range recs {
		walk(map[string]json.RawMessage{r.Key: r.Value}, r.Line, 0)
	}
	return out, bad.err()
}
