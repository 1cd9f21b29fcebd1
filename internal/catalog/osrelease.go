package catalog

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"strconv"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// readOSRelease reads /etc/os-release (or /usr/lib/os-release). An image
// without one (scratch, distroless static) has no distro: nil, no error. A
// symlink loop or a link out of the root is an error: the image is broken.
func readOSRelease(in *Input) (_ *sbom.Distro, err error) {
	defer recovered(&err, "os-release", in, nil) // it runs in the caller's goroutine: a panic would be the caller's
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, _, err := in.FS.ReadFile(p, 1<<20)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d := parseOSRelease(data)
		if d.ID == "" {
			in.Warnf("os-release: %s has no ID", p)
			continue
		}
		if d.ID == "alpine" {
			// os-release says 3.19.1; advisories are keyed by v3.19.
			if rel, _, err := in.FS.ReadFile("/etc/alpine-release", 1<<10); err == nil {
				d.VersionID = strings.TrimSpace(string(rel))
			}
		}
		return d, nil
	}
	return nil, nil
}

// parseOSRelease parses the os-release(5) format: KEY=value lines, values
// optionally quoted with shell quoting.
func parseOSRelease(data []byte) *sbom.Distro {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		kv[k] = v
	}
	d := &sbom.Distro{
		ID:              kv["ID"],
		VersionID:       kv["VERSION_ID"],
		VersionCodename: kv["VERSION_CODENAME"],
		PrettyName:      kv["PRETTY_NAME"],
	}
	if like := kv["ID_LIKE"]; like != "" {
		d.IDLike = strings.Fields(like)
	}
	return d
}
