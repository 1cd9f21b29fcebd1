package catalog

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/layerfs"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// maxJavaNesting bounds archives inside archives: a jar in a war in an ear
// in an outer file is depth 3.
const maxJavaNesting = 4

// javaCataloger reads Java archives (jar, war, ear and Jenkins' jpi and
// hpi). The outer archive is read in place, through its zip directory; only
// the members it needs, and nested archives, are read into memory.
func javaCataloger() Cataloger { return javaArchiveCataloger{} }

type javaArchiveCataloger struct{}

func (javaArchiveCataloger) Name() string { return "java-archive-cataloger" }

func isJavaArchive(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".jar", ".war", ".ear", ".jpi", ".hpi":
		return true
	}
	return false
}

func (c javaArchiveCataloger) Catalog(ctx context.Context, in *Input) ([]sbom.Package, error) {
	var out []sbom.Package
	for _, n := range in.Files(isJavaArchive) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pkgs, err := c.archiveFile(in, n)
		if err != nil {
			return nil, err
		}
		out = append(out, pkgs...)
	}
	return out, nil
}

// archiveFile reads the packages of archive n and of those nested in it;
// its only error is a *PanicError naming n.
func (c javaArchiveCataloger) archiveFile(in *Input, n *layerfs.Node) (_ []sbom.Package, err error) {
	defer recovered(&err, c.Name(), in, n)
	f, err := in.FS.Open(n)
	if err != nil {
		in.Problem(c.Name(), n, 0, fmt.Errorf("skipping the file: %w", err))
		return nil, nil
	}
	defer f.Close()
	w := &javaWalker{in: in, loc: in.Location(n), budget: 4 * in.MaxFileSize}
	zr, err := openZip(f, f.Size())
	if err != nil {
		w.warn(n.Path, err)
	} else {
		w.archive(zr, []string{n.Path})
	}
	return w.out, nil
}

// openZip opens a zip directory. Member names that climb out with ".." are
// no harm here: nothing is written to disk.
func openZip(r io.ReaderAt, size int64) (*zip.Reader, error) {
	zr, err := zip.NewReader(r, size)
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading zip directory: %w", err)
	}
	return zr, nil
}

// javaWalker collects the packages of one outer archive and of the archives
// nested in it.
type javaWalker struct {
	in  *Input
	loc sbom.Location
	// budget is what is left of the bytes the walker may decompress, so
	// that thousands of small bombs cannot each take MaxFileSize.
	budget     int64
	overBudget bool // warned once about the budget
	out        []sbom.Package
}

var errJavaBudget = errors.New("decompressed more than four times the file size limit from this archive")

// warn reports a problem with one archive (where is its path, nested
// archives after colons), and the budget only once: what the archive holds
// is missing from the inventory.
func (w *javaWalker) warn(where string, err error) {
	if errors.Is(err, errJavaBudget) {
		if w.overBudget {
			return
		}
		w.overBudget = true
	}
	w.in.problemAt(sbom.Problem{Cataloger: "java-archive-cataloger", Path: where, Layer: w.loc.Layer, Message: err.Error()})
}

// archive reads one archive; chain is the path of the outer file followed by
// the member path of each nested archive down to this one.
func (w *javaWalker) archive(zr *zip.Reader, chain []string) {
	where := strings.Join(chain, ":")
	var found bool
	var manifest *zip.File
	var nested []*zip.File
	for _, f := range zr.File {
		switch {
		case strings.HasSuffix(f.Name, "/"):
		case strings.HasPrefix(f.Name, "META-INF/maven/") && path.Base(f.Name) == "pom.properties":
			data, err := w.read(f, 1<<20)
			if err != nil {
				w.warn(where, err)
				continue
			}
			if p, ok := pomPackage(parseJavaProperties(data)); ok {
				w.add(p, chain)
				found = true
			}
		case f.Name == "META-INF/MANIFEST.MF":
			manifest = f
		case isJavaArchive(f.Name):
			nested = append(nested, f)
		}
	}
	if !found {
		var mf map[string]string
		if manifest != nil {
			data, err := w.read(manifest, 1<<20)
			if err != nil {
				w.warn(where, err)
			}
			mf = parseJavaManifest(data)
		}
		if p, ok := javaFallbackPackage(path.Base(chain[len(chain)-1]), mf); ok {
			w.add(p, chain)
		}
	}
	if len(chain) > maxJavaNesting {
		if len(nested) > 0 {
			w.warn(where, fmt.Errorf("not reading %d archives nested more than %d levels deep", len(nested), maxJavaNesting))
		}
		return
	}
	for _, f := range nested {
		data, err := w.read(f, w.in.MaxFileSize)
		if err != nil {
			w.warn(where, err)
			continue
		}
		zr, err := openZip(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			w.warn(where+":"+f.Name, err)
			continue
		}
		w.archive(zr, append(chain[:len(chain):len(chain)], f.Name))
	}
}

// read decompresses one member, refusing members over limit bytes (and over
// MaxFileSize) or over what is left of the walker's budget. The size in the
// zip directory is checked first, and the reader is bounded too, as the
// directory may lie.
func (w *javaWalker) read(f *zip.File, limit int64) ([]byte, error) {
	limit = min(limit, w.in.MaxFileSize)
	switch {
	case f.UncompressedSize64 > uint64(limit):
		return nil, fmt.Errorf("skipping %s: %d bytes uncompressed is over the limit of %d", f.Name, f.UncompressedSize64, limit)
	case f.UncompressedSize64 > uint64(max(w.budget, 0)):
		return nil, errJavaBudget
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, min(limit, w.budget)+1))
	w.budget -= int64(len(data))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", f.Name, err)
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("skipping %s: more than %d bytes uncompressed", f.Name, limit)
	case w.budget < 0:
		return nil, errJavaBudget
	}
	return data, nil
}

func (w *javaWalker) add(p sbom.Package, chain []string) {
	p.Type = sbom.TypeJava
	p.Locations = []sbom.Location{w.loc}
	if len(chain) > 1 {
		p.Metadata = map[string]string{"archivePath": strings.Join(chain, ":")}
	}
	w.out = append(w.out, p)
}

// pomPackage is the Maven artifact that a pom.properties describes.
func pomPackage(props map[string]string) (sbom.Package, bool) {
	group, artifact, version := props["groupId"], props["artifactId"], props["version"]
	if artifact == "" || version == "" {
		return sbom.Package{}, false
	}
	name := artifact
	if group != "" {
		name = group + ":" + artifact
	}
	return sbom.Package{Name: name, Version: version, PURL: purl("maven", group, artifact, version)}, true
}

// javaFallbackPackage names an archive that carries no pom.properties. The
// file name, when it has the artifact-version.jar form that Maven, Gradle and
// Spring Boot give to dependency jars, is the best evidence; otherwise the
// manifest's Implementation-Title or Bundle-SymbolicName and
// Implementation-Version or Bundle-Version. Maven's archiver writes the
// groupId as Implementation-Vendor-Id. Without a version there is no package.
func javaFallbackPackage(file string, mf map[string]string) (sbom.Package, bool) {
	name, version := splitJavaFileName(file)
	if version == "" {
		version = cmp.Or(mf["Implementation-Version"], mf["Bundle-Version"])
		title := mf["Implementation-Title"]
		if strings.ContainsAny(title, " \t") {
			title = "" // "Apache Commons Lang" is a title, not an artifact
		}
		bsn, _, _ := strings.Cut(mf["Bundle-SymbolicName"], ";") // drop ";singleton:=true"
		name = cmp.Or(title, strings.TrimSpace(bsn), name)
	}
	if name == "" || version == "" {
		return sbom.Package{}, false
	}
	group := mf["Implementation-Vendor-Id"]
	if strings.ContainsAny(group, " \t") {
		group = ""
	}
	full := name
	if group != "" {
		full = group + ":" + name
	}
	return sbom.Package{Name: full, Version: version, PURL: purl("maven", group, name, version)}, true
}

// splitJavaFileName splits "commons-lang3-3.12.0.jar" into the artifact and
// the version at the first dash followed by a digit. A name with no such
// dash is all artifact ("app.jar").
func splitJavaFileName(file string) (name, version string) {
	stem := strings.TrimSuffix(file, path.Ext(file))
	for i := 0; i+1 < len(stem); i++ {
		if stem[i] == '-' && stem[i+1] >= '0' && stem[i+1] <= '9' && i > 0 {
			return stem[:i], stem[i+1:]
		}
	}
	return stem, ""
}

// parseJavaProperties reads a .properties file as Maven writes
// pom.properties: "key=value" (or "key: value") lines and # or ! comments.
func parseJavaProperties(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			continue
		}
		out[strings.TrimSpace(line[:i])] = strings.TrimSpace(line[i+1:])
	}
	return out
}

// parseJavaManifest reads the main section of a jar manifest: "Name: value"
// lines, wrapped at 72 bytes with continuation lines that start with one
// space, ending at the first empty line.
func parseJavaManifest(data []byte) map[string]string {
	out := map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' {
			if last != "" {
				out[last] += line[1:]
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			last = ""
			continue
		}
		last = strings.TrimSpace(k)
		out[last] = strings.TrimSpace(v)
	}
	return out
}
