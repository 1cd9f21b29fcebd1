package secretfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// Volumes are the containers' secret volumes under Root.
type Volumes struct {
	Root string
	// Mode of the files (zero: 0444, readable by the container's user,
	// whoever it is; the directory is the container's alone).
	Mode os.FileMode
}

// Check reports whether Root is on a tmpfs, and closes Root to everyone
// but its owner (0700): the volumes inside are 0755 and their files 0444,
// readable by whatever user a container runs as, and a tmpfs mounted
// without mode= is 1777, so without this any user of the host could read
// every container's secrets. A container reaches its volume through its
// bind mount, which does not need Root's permissions.
func (v *Volumes) Check() error {
	var st unix.Statfs_t
	if err := unix.Statfs(v.Root, &st); err != nil {
		return fmt.Errorf("checking the secret volume root %s: %w", v.Root, err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("the secret volume root %s is not a tmpfs (type %#x): secrets must not be written to a disk", v.Root, st.Type)
	}
	fi, err := os.Stat(v.Root)
	if err != nil {
		return fmt.Errorf("checking the secret volume root %s: %w", v.Root, err)
	}
	if fi.Mode()&(os.ModePerm|os.ModeSticky) != 0o700 {
		if err := os.Chmod(v.Root, 0o700); err != nil {
			return fmt.Errorf("closing the secret volume root %s to other users (chmod 0700): %w", v.Root, err)
		}
	}
	return nil
}

var errContainer = errors.New("container id: want 1-128 letters, digits, '.', '_' or '-'")

// Dir is container's volume.
func (v *Volumes) Dir(container string) (string, error) {
	if container == "" || len(container) > 128 || strings.ContainsAny(container, "/\\\x00") || container == "." || container == ".." {
		return "", errContainer
	}
	return filepath.Join(v.Root, container), nil
}

// Apply writes the released secrets of resp into container's volume and
// removes the refused ones. It returns how many it wrote and removed.
func (v *Volumes) Apply(container string, resp agentproto.SecretsResponse) (written, removed int, err error) {
	dir, err := v.Dir(container)
	if err != nil {
		return 0, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, fmt.Errorf("making the secret volume of %s: %w", container, err)
	}
	var errs []error
	for _, s := range resp.Secrets {
		if !agentproto.SecretNameRE.MatchString(s.Name) || len(s.Name) > 200 {
			errs = append(errs, fmt.Errorf("secret name %q: not a safe path", s.Name))
			continue
		}
		path := filepath.Join(dir, filepath.FromSlash(s.Name))
		if err := noLinks(dir, filepath.Dir(path)); err != nil {
			errs = append(errs, fmt.Errorf("secret %s for %s: %w", s.Name, container, err))
			continue
		}
		if s.Refused != "" {
			if _, err := os.Lstat(path); err == nil {
				if err := os.RemoveAll(path); err != nil {
					errs = append(errs, err)
					continue
				}
				removed++
			}
			continue
		}
		if err := v.write(path, s); err != nil {
			errs = append(errs, fmt.Errorf("writing secret %s for %s: %w", s.Name, container, err))
			continue
		}
		written++
	}
	return written, removed, errors.Join(errs...)
}

func (v *Volumes) write(path string, s agentproto.DeliveredSecret) error {
	mode := v.Mode
	if mode == 0 {
		mode = 0o444
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if s.Kind == "file" {
		if fi, err := os.Lstat(path); err == nil && fi.IsDir() { // it was a kv secret
			os.RemoveAll(path)
		}
		return replace(path, s.File, mode)
	}
	if fi, err := os.Lstat(path); err == nil && !fi.IsDir() {
		os.Remove(path)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		if k == "" || k == "." || k == ".." || strings.ContainsAny(k, "/\\\x00") || strings.HasPrefix(k, ".") {
			return fmt.Errorf("key %q: not a file name", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := replace(filepath.Join(path, k), []byte(s.Data[k]), mode); err != nil {
			return err
		}
	}
	ents, _ := os.ReadDir(path) // keys the new version no longer has
	for _, e := range ents {
		if _, ok := s.Data[e.Name()]; !ok {
			os.Remove(filepath.Join(path, e.Name()))
		}
	}
	return nil
}

// noLinks refuses a symbolic link on the way from dir down to sub: the
// agent must never write through a link someone placed in a volume (it
// is mounted read-only into the container, and this holds if it is not).
func noLinks(dir, sub string) error {
	rel, err := filepath.Rel(dir, sub)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not under %s", sub, dir)
	}
	p := dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: refused", p)
		}
	}
	return nil
}

// replace writes b to path by a rename: a reader sees the old or the new
// content.
func replace(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Remove deletes container's volume (the container is gone).
func (v *Volumes) Remove(container string) error {
	dir, err := v.Dir(container)
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// Wanted is the secrets a container's labels ask for (LabelSecrets),
// valid names only, at most MaxSecretsPerContainer.
func Wanted(labels map[string]string) []string {
	var out []string
	for _, n := range strings.Split(labels[agentproto.LabelSecrets], ",") {
		n = strings.TrimSpace(n)
		if n != "" && agentproto.SecretNameRE.MatchString(n) && len(out) < agentproto.MaxSecretsPerContainer {
			out = append(out, n)
		}
	}
	return out
}
