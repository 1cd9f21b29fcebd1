package vulndb

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// OSVExports is where OSV publishes one all.zip per ecosystem.
const OSVExports = "https://osv-vulnerabilities.storage.googleapis.com/"

// DefaultEcosystems are the OSV exports `bulwark db update` reads by default:
// the distributions and language ecosystems Bulwark catalogs.
var DefaultEcosystems = []string{
	"Debian", "Ubuntu", "Alpine", "Red Hat", "Rocky Linux", "AlmaLinux",
	"Go", "npm", "PyPI", "Maven", "crates.io", "RubyGems", "Packagist", "NuGet",
}

// Source is where an import reads records from.
type Source struct {
	// Name identifies the source in the database ("Go", "Debian"). A
	// record belongs to the source that last wrote it, and only that
	// source's next import may remove it.
	Name string
	// Location is an http(s) URL of a zip, a local zip file, a directory
	// of *.json records (walked recursively) or one JSON record.
	Location string
}

// DefaultSources are OSV's exports of DefaultEcosystems, each named after
// its ecosystem.
func DefaultSources() []Source {
	out := make([]Source, len(DefaultEcosystems))
	for i, eco := range DefaultEcosystems {
		out[i] = Source{Name: eco, Location: OSVExports + url.PathEscape(eco) + "/all.zip"}
	}
	return out
}

// ParseSource makes a Source of a command-line value: "NAME=LOCATION", or
// a LOCATION whose name is derived from it: the folder of an all.zip
// (".../Go/all.zip" is "Go", as OSV lays its exports out), else the file
// or directory name without ".zip".
func ParseSource(s string) Source {
	if name, loc, ok := strings.Cut(s, "="); ok && name != "" && !strings.ContainsAny(name, `/\:`) {
		return Source{Name: name, Location: loc}
	}
	return Source{Name: sourceName(s), Location: s}
}

func sourceName(loc string) string {
	p := filepath.ToSlash(filepath.Clean(loc))
	if isURL(loc) {
		u, err := url.Parse(loc)
		if err != nil {
			return loc
		}
		p = u.Path
	}
	p = strings.TrimSuffix(p, "/")
	base := path.Base(p)
	if strings.EqualFold(base, "all.zip") {
		if dir := path.Base(path.Dir(p)); dir != "." && dir != "/" && dir != "" {
			base = dir
		}
	}
	base = strings.TrimSuffix(base, ".zip")
	if base == "" || base == "." || base == "/" {
		return loc
	}
	return base
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// entry is one record's bytes as read from a source, or why they could not
// be read. name is a label for messages (a zip member name or a path
// relative to the source directory), never opened.
type entry struct {
	seq  int // reading order, set by the import
	name string
	data []byte
	err  error
}

// errTooLarge is the skip reason of a record over maxRecordSize.
var errTooLarge = fmt.Errorf("larger than %d MiB", maxRecordSize>>20)

// readZip calls fn for each *.json member of the zip in f. A member that
// cannot be read is passed on with its error; members adding up to more
// than maxTotal bytes uncompressed stop the import.
func readZip(ctx context.Context, f *os.File, label string, maxTotal int64, fn func(entry) error) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", label, err)
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are only labels
		return fmt.Errorf("reading zip %s: %w", label, err)
	}
	var total int64
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if zf.FileInfo().IsDir() || !strings.HasSuffix(strings.ToLower(zf.Name), ".json") {
			continue
		}
		e := entry{name: zf.Name}
		if zf.UncompressedSize64 > maxRecordSize {
			e.err = errTooLarge
		} else {
			e.data, e.err = readMember(zf)
			total += int64(len(e.data))
		}
		if total > maxTotal {
			return fmt.Errorf("reading zip %s: more than %d bytes uncompressed (raise the archive size limit if this export is genuine)", label, maxTotal)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// readMember reads one zip member, at most maxRecordSize bytes of it
// whatever its header claims.
func readMember(zf *zip.File) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readCapped(rc)
}

func readCapped(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxRecordSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecordSize {
		return nil, errTooLarge
	}
	return data, nil
}

// readDir calls fn for each *.json file under dir, in lexical order.
// Unreadable files and subdirectories are passed on as skipped entries.
func readDir(ctx context.Context, dir string, fn func(entry) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if err != nil {
			if p == dir {
				return fmt.Errorf("reading %s: %w", dir, err)
			}
			if ferr := fn(entry{name: rel, err: err}); ferr != nil {
				return ferr
			}
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(strings.ToLower(d.Name()), ".json") {
			return nil
		}
		e := entry{name: rel}
		e.data, e.err = readFile(p)
		return fn(e)
	})
}

// readFile reads one JSON file, at most maxRecordSize bytes of it.
func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRecordSize {
		return nil, errTooLarge
	}
	return readCapped(f)
}
