package bpflsm

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// TestWalkAllowed checks what Compile lists, without loading programs:
// executables whose content the image has (a copy under another name
// too), not others; ELF libraries only with mmap checks; nothing on
// another filesystem mounted in the container; nothing reached through a
// symlink the container planted (an absolute link to a host directory is
// resolved inside the root); the same through a link to the root (the
// agent's /proc/PID/root); the bound on listed files.
func TestWalkAllowed(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir() // "the host"
	elf := func(tag string) []byte { return append([]byte{0x7f, 'E', 'L', 'F'}, tag...) }
	write := func(dir, p string, b []byte, mode os.FileMode) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	digest := func(b []byte) string { h := sha256.Sum256(b); return allowlist.Digest(h).String() }
	app, lib, other := elf("app"), elf("lib"), elf("other")
	write(root, "bin/app", app, 0o755)
	write(root, "usr/bin/app-copy", app, 0o755) // same content: the image's
	write(root, "tmp/other", other, 0o755)      // not the image's
	write(root, "lib/libx.so.1", lib, 0o644)    // a library: mapped, not run
	write(root, "etc/conf", []byte("app"), 0o644)
	write(outside, "secret/app", app, 0o755) // the image's content, on the host
	if err := os.Symlink(outside+"/secret", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mount("bulwark-test", mnt, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		write(mnt, "app", app, 0o755) // another filesystem in the container
	}
	list, err := allowlist.FromInventory("sha256:img", []sbom.File{
		{Path: "/bin/app", Type: "file", Mode: "0755", Digest: digest(app)},
		{Path: "/lib/libx.so.1", Type: "file", Mode: "0644", Digest: digest(lib)},
	}, allowlist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	names := func(mmap bool) map[uint64]bool {
		var ids []FileID
		out, err := walkAllowed(context.Background(), root, list, allowlist.NewDigestCache(64), mmap, func(id FileID) error { ids = append(ids, id); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Files) != len(ids) {
			t.Fatalf("%d files listed, %d allowed", len(out.Files), len(ids))
		}
		m := map[uint64]bool{}
		for _, id := range ids {
			m[id.Ino] = true
		}
		return m
	}
	ino := func(p string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	execOnly := names(false)
	if !execOnly[ino(filepath.Join(root, "bin/app"))] || !execOnly[ino(filepath.Join(root, "usr/bin/app-copy"))] || len(execOnly) != 2 {
		t.Fatalf("exec checks: listed %v, want bin/app and its copy only", execOnly)
	}
	// The agent walks /proc/PID/root, a link to the container's root:
	// the same files are listed through a link.
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	var viaLink []FileID
	if _, err := walkAllowed(context.Background(), link, list, allowlist.NewDigestCache(64), false, func(id FileID) error { viaLink = append(viaLink, id); return nil }); err != nil || len(viaLink) != len(execOnly) {
		t.Fatalf("through a link to the root: listed %v (%v), want %d files", viaLink, err, len(execOnly))
	}
	withMmap := names(true)
	if !withMmap[ino(filepath.Join(root, "lib/libx.so.1"))] || len(withMmap) != 3 {
		t.Fatalf("mmap checks: listed %v, want the library too", withMmap)
	}
	if withMmap[ino(filepath.Join(outside, "secret/app"))] {
		t.Fatal("a file on the host, reached through a planted symlink, was listed")
	}
	// judge resolves an absolute symlink inside the root: "escape/app"
	// names <root>/<outside>/secret/app, which does not exist.
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	rfs, err := rootFSOf(fd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := judge(fd, "escape/app", rfs, list, allowlist.NewDigestCache(4), false, &Compiled{}); ok {
		t.Fatal("judge followed a planted symlink out of the root")
	}
	defer func(n int) { MaxCompiled = n }(MaxCompiled)
	MaxCompiled = 1
	_, err = walkAllowed(context.Background(), root, list, allowlist.NewDigestCache(64), false, func(FileID) error { return nil })
	var tl *allowlist.TooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("past MaxCompiled: %v, want a TooLargeError", err)
	}
}
