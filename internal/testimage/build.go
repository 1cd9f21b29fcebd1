package testimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// CacheDir is where built fixtures are kept between runs.
func CacheDir() string {
	if d := os.Getenv("BULWARK_TEST_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "bulwark-test")
	}
	return filepath.Join(home, ".cache", "bulwark-test")
}

// ErrUnavailable reports that a fixture cannot be built on this machine.
var ErrUnavailable = errors.New("fixture cannot be built here")

// NPMPackages are installed into the application layer: versions with
// published advisories.
var NPMPackages = []string{"lodash@4.17.15", "minimist@1.2.0", "node-fetch@2.6.0"}

// DebianLayer returns the path of an uncompressed layer tar holding a
// debootstrap'd Debian bookworm minbase root filesystem, building it once.
func DebianLayer() (string, error) {
	out := filepath.Join(CacheDir(), "bookworm-minbase.tar")
	return out, buildOnce(out, func(tmp string) error {
		if os.Geteuid() != 0 {
			return fmt.Errorf("%w: debootstrap needs root", ErrUnavailable)
		}
		debootstrap, err := exec.LookPath("debootstrap")
		if err != nil {
			debootstrap = "/usr/sbin/debootstrap" // root's PATH may lack sbin
			if _, err := os.Stat(debootstrap); err != nil {
				return fmt.Errorf("%w: debootstrap is not installed", ErrUnavailable)
			}
		}
		root, err := os.MkdirTemp(CacheDir(), "rootfs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(root)
		mirror := os.Getenv("BULWARK_DEBIAN_MIRROR")
		if mirror == "" {
			mirror = "http://deb.debian.org/debian"
		}
		cmd := exec.Command(debootstrap, "--variant=minbase", "bookworm", root, mirror)
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("debootstrap: %w\n%s", err, lastLines(b, 20))
		}
		// as official images do: no downloaded .debs, no apt lists
		for _, glob := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"} {
			matches, _ := filepath.Glob(filepath.Join(root, glob))
			for _, m := range matches {
				os.Remove(m)
			}
		}
		return TarDir(root, tmp)
	})
}

// AppLayer returns the path of an uncompressed layer tar with the Go test
// program at /usr/local/bin/bulwark-testapp and an npm project at /app.
func AppLayer() (string, error) {
	out := filepath.Join(CacheDir(), "app-layer-v2.tar")
	return out, buildOnce(out, func(tmp string) error {
		for _, tool := range []string{"go", "npm"} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("%w: %s is not installed", ErrUnavailable, tool)
			}
		}
		root, err := os.MkdirTemp(CacheDir(), "app-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(root)
		if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
			return err
		}
		if err := BuildGoApp(filepath.Join(root, "usr/local/bin/bulwark-testapp")); err != nil {
			return err
		}
		app := filepath.Join(root, "app")
		if err := os.MkdirAll(app, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name":"bulwark-testapp","version":"1.0.0","private":true}`+"\n"), 0o644); err != nil {
			return err
		}
		args := append([]string{"install", "--ignore-scripts", "--no-audit", "--no-fund", "--save-exact"}, NPMPackages...)
		cmd := exec.Command("npm", args...)
		cmd.Dir = app
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("npm install: %w\n%s", err, lastLines(b, 20))
		}
		return TarDir(root, tmp)
	})
}

// BuildGoApp builds testdata/goapp into out.
func BuildGoApp(out string) error {
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "testdata", "goapp")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the Go test program: %w\n%s", err, lastLines(b, 20))
	}
	return nil
}

// buildOnce runs build into a temporary file and renames it to out, unless
// out already exists.
func buildOnce(out string, build func(tmp string) error) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".partial"
	if err := build(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// TarDir writes the tree under root as an uncompressed layer tar: entries in
// path order, names relative to root without "./", hard links kept, every
// time set to Created so the same tree always gives the same diffID.
func TarDir(root, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	inodes := map[uint64]string{}
	var paths []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		f.Close()
		return err
	}
	slices.Sort(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		if err := addToTar(tw, p, filepath.ToSlash(rel), inodes); err != nil {
			f.Close()
			return fmt.Errorf("adding %s: %w", rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func addToTar(tw *tar.Writer, p, name string, inodes map[uint64]string) error {
	info, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	h, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	h.Name = name
	h.Uname, h.Gname = "", ""
	h.ModTime, h.AccessTime, h.ChangeTime = Created, time.Time{}, time.Time{} // reproducible layers
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
		if info.Mode().IsRegular() && st.Nlink > 1 {
			if first, seen := inodes[st.Ino]; seen {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(h)
			}
			inodes[st.Ino] = name
		}
	}
	if info.IsDir() {
		h.Name += "/"
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(tw, src)
	return err
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
