package catalog

import (
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// cargoLockCataloger reads Cargo.lock files (all lockfile versions share the
// [[package]] tables). Rust binaries built with cargo-auditable are read by
// the binary cataloger instead.
func cargoLockCataloger() Cataloger {
	return fileCataloger{
		name:  "rust-cargo-lock-cataloger",
		match: func(p string) bool { return path.Base(p) == "Cargo.lock" },
		parse: parseCargoLock,
	}
}

func parseCargoLock(in *Input, n *layerfs.Node, data []byte) ([]sbom.Package, error) {
	return cargoLockPackages(data, in.Location(n))
}

// cargoLockPackages lists the crates that come from a registry or a git
// repository. Path dependencies and the workspace's own crates have no
// source and are left out: they are the project, not its dependencies.
//
// Cargo writes each [[package]] table as `key = value` lines (a dependency
// list continues on indented lines), and only the name, version and source
// strings are read, line by line, so that a damaged table costs that crate
// only: a line that is none of these is skipped and reported, and a second
// name in one table starts the next crate (its [[package]] line was lost).
func cargoLockPackages(data []byte, loc sbom.Location) ([]sbom.Package, error) {
	var out []sbom.Package
	var bad recordErrors
	type crate struct {
		line                  int
		name, version, source string
	}
	var cur *crate
	flush := func() {
		switch {
		case cur == nil:
		case cur.name == "" || cur.version == "":
			bad.add(cur.line, "a package without a name or version")
		case cur.source != "":
			out = append(out, rustCrate(cur.name, cur.version, cur.source, loc))
		}
		cur = nil
	}
	for k, l := range splitLines(data) {
		text := l.text
		key, value, isKey := strings.Cut(text, " = ")
		switch {
		case strings.HasPrefix(text, "["):
			flush()
			if strings.TrimSpace(text) == "[[package]]" {
				cur = &crate{line: k + 1}
			}
		case strings.TrimSpace(text) == "" || text[0] == '#' || text[0] == ' ' || text[0] == '\t' || text[0] == ']':
		case !isKey || !cargoKey.MatchString(key):
			bad.add(k+1, "not a \"key = value\" line")
		case cur == nil || key != "name" && key != "version" && key != "source":
		default:
			s, err := strconv.Unquote(value)
			if err != nil || !strings.HasPrefix(value, "\"") {
				bad.add(k+1, "%s is not a string", key)
				continue
			}
			if key == "name" && cur.name != "" {
				flush()
				cur = &crate{line: k + 1}
			}
			switch key {
			case "name":
				cur.name = s
			case "version":
				cur.version = s
			case "source":
				cur.source = s
			}
		}
	}
	flush()
	return out, bad.err()
}

var cargoKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
