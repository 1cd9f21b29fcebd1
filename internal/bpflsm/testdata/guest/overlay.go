package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// overlayModule is where the test puts the kernel's overlay.ko (Debian
// builds overlayfs as a module).
const overlayModule = "/lib/modules/overlay.ko"

// loadOverlay makes overlayfs available: loaded from overlayModule unless
// the kernel has it already.
func loadOverlay() error {
	fss, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return err
	}
	if strings.Contains(string(fss), "\toverlay\n") {
		fmt.Println("BULWARK overlay module built in")
		return nil
	}
	f, err := os.Open(overlayModule)
	if err != nil {
		return fmt.Errorf("loading overlayfs: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return fmt.Errorf("loading overlayfs from %q: %w", overlayModule, err)
	}
	fmt.Println("BULWARK overlay module loaded")
	return nil
}

// ovlLayout is one container's overlay: an image layer (lower), a
// writable layer (upper) and the merged root the container runs in.
type ovlLayout struct {
	base, lower, upper, work, merged string
}

// mountOverlay builds lower from the image's files and mounts the merged
// root. With sameFS every layer is on one tmpfs, as containerd's overlay
// snapshots are on one host filesystem; without, the lower layer is on a
// tmpfs of its own.
func mountOverlay(base string, sameFS bool) (ovlLayout, error) {
	o := ovlLayout{base: base, lower: base + "/lower", upper: base + "/upper", work: base + "/work", merged: base + "/merged"}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return o, err
	}
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=0755"); err != nil {
		return o, fmt.Errorf("mounting tmpfs on %q: %w", base, err)
	}
	for _, d := range []string{o.lower, o.upper, o.work, o.merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return o, err
		}
	}
	if !sameFS {
		if err := unix.Mount("tmpfs", o.lower, "tmpfs", 0, "mode=0755"); err != nil {
			return o, fmt.Errorf("mounting tmpfs on %q: %w", o.lower, err)
		}
	}
	for _, d := range []string{"bin", "tmp", "lib64", "lib/x86_64-linux-gnu"} {
		if err := os.MkdirAll(filepath.Join(o.lower, d), 0o755); err != nil {
			return o, err
		}
	}
	if err := os.Chmod(filepath.Join(o.lower, "tmp"), 0o1777); err != nil {
		return o, err
	}
	// The image: busybox, a second copy of it (modified later), the
	// dynamic program with its interpreter and libc; and a file in the
	// image whose content the list does not hold (busybox with a byte
	// appended).
	for _, c := range [][2]string{{busybox, "bin/busybox"}, {busybox, "bin/tool"}, {busybox, "bin/unlisted"},
		{dyn, "bin/dyntrue"}, {ldso, ldso[1:]}, {libc, libc[1:]}} {
		if err := copyFile(c[0], filepath.Join(o.lower, c[1])); err != nil {
			return o, err
		}
	}
	if err := appendByte(filepath.Join(o.lower, "bin/unlisted")); err != nil {
		return o, err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", o.lower, o.upper, o.work)
	if err := unix.Mount("overlay", o.merged, "overlay", 0, opts); err != nil {
		return o, fmt.Errorf("mounting overlay on %q (%s): %w", o.merged, opts, err)
	}
	return o, nil
}

// overlayList is the image's allowlist: busybox, the dynamic program, its
// interpreter and libc (not bin/unlisted).
func overlayList() (*allowlist.List, error) {
	var files []sbom.File
	for _, p := range []string{busybox, dyn, ldso, libc} {
		f, err := tableEntry(p)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return allowlist.FromInventory("sha256:overlay", files, allowlist.Config{Entrypoint: []string{busybox}})
}

// runIn runs argv chrooted into root (as a container's process runs),
// with argv[0] "busybox" for busybox and its copies (all but the dynamic
// program and /tmp/new, a copy of this program).
func runIn(root string, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Path = argv[0] // resolved inside the chroot, not here
	if argv[0] != dyn && argv[0] != "/tmp/new" {
		cmd.Args[0] = "busybox"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}

// nextEvent waits up to 10 s for the next drift report of cgroup cg.
func nextEvent(events <-chan bpflsm.Event, cg uint64) (bpflsm.Event, error) {
	for {
		select {
		case ev := <-events:
			if ev.Cgroup == cg {
				return ev, nil
			}
		case <-time.After(10 * time.Second):
			return bpflsm.Event{}, errors.New("no event in 10 s")
		}
	}
}

// overlayCase watches a fresh cgroup whose root is an overlay, with its
// list compiled by Enforcer.Compile walking the merged root (as the agent
// walks /proc/PID/root), and checks what runs, what is refused and the
// identities the kernel reports against the ones compiled.
func overlayCase(ctx context.Context, enf *bpflsm.Enforcer, events <-chan bpflsm.Event, name string, sameFS bool) error {
	o, err := mountOverlay("/"+name, sameFS)
	if err != nil {
		return err
	}
	list, err := overlayList()
	if err != nil {
		return err
	}
	cgPath := "/sys/fs/cgroup/" + name
	cg, err := makeCgroup(cgPath)
	if err != nil {
		return err
	}
	comp, err := enf.Compile(ctx, cg, o.merged, list, allowlist.NewDigestCache(64), true)
	if err != nil {
		return err
	}
	compiled := map[[2]uint64]bool{}
	for _, f := range comp.Files {
		compiled[[2]uint64{uint64(f.Dev), f.Ino}] = true
	}
	merged, _ := bpflsm.FileIDOf(o.merged + "/bin/busybox")
	lower, _ := bpflsm.FileIDOf(o.lower + "/bin/busybox")
	fmt.Printf("BULWARK %s compiled listed=%d visited=%d not-image=%d; bin/busybox stat through the root dev=%#x ino=%d, in the lower layer dev=%#x ino=%d\n",
		name, len(comp.Files), comp.Visited, comp.Refused, merged.Dev, merged.Ino, lower.Dev, lower.Ino)
	if len(comp.Files) != 5 { // busybox, tool, dyntrue, ld.so, libc
		return fmt.Errorf("%s: compiled %d files, want 5", name, len(comp.Files))
	}
	if err := enf.Watch(cg, bpflsm.ModePrevent, true); err != nil {
		return err
	}
	if err := joinCgroup(cgPath); err != nil {
		return err
	}
	defer func() { _ = joinCgroup(cgDir) }()

	// The image's listed files run, static and dynamic (the kernel maps
	// the overlay's ld.so and libc): the identities compiled are the ones
	// the hooks see.
	for _, argv := range [][]string{{"/bin/busybox", "true"}, {"/bin/tool", "true"}, {dyn}} {
		if out, err := runIn(o.merged, argv...); err != nil {
			return fmt.Errorf("%s: listed %q: %v %q", name, argv, err, out)
		}
		fmt.Printf("BULWARK %s listed %s ran\n", name, argv[0])
	}
	// A new file in the writable layer, and a copy of a listed file made
	// after the list was compiled (the image's content under an inode
	// that was not listed: BPF-LSM decides by identity).
	if err := copyFile("/guest", o.merged+"/tmp/new"); err != nil {
		return err
	}
	if err := copyFile(o.merged+"/bin/busybox", o.merged+"/tmp/copy"); err != nil {
		return err
	}
	// Copied up without a change of content (opened for writing, nothing
	// written): the change time moves.
	time.Sleep(50 * time.Millisecond) // off the listing's ctime tick
	f, err := os.OpenFile(o.merged+"/bin/busybox", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	f.Close()
	if _, err := os.Stat(o.upper + "/bin/busybox"); err != nil {
		return fmt.Errorf("%s: opening bin/busybox for writing did not copy it up: %w", name, err)
	}
	// Copied up and modified.
	if err := appendByte(o.merged + "/bin/tool"); err != nil {
		return err
	}
	for _, c := range []struct {
		what   string
		argv   []string
		reason bpflsm.Reason // 0: either (layers on several filesystems: see below)
		listed bool          // the kernel's identity is one compiled
	}{
		{"image file not in the list", []string{"/bin/unlisted", "true"}, bpflsm.ReasonNotListed, false},
		{"new file in upper", []string{"/tmp/new", "ran", "overlay-escape"}, bpflsm.ReasonNotListed, false},
		{"copy after compile", []string{"/tmp/copy", "true"}, bpflsm.ReasonNotListed, false},
		{"copy-up unmodified", []string{"/bin/busybox", "true"}, bpflsm.ReasonModified, true},
		{"copy-up modified", []string{"/bin/tool", "true"}, bpflsm.ReasonModified, true},
	} {
		out, err := runIn(o.merged, c.argv...)
		if !errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("%s: %s: want EPERM, got %v %q", name, c.what, err, out)
		}
		ev, err := nextEvent(events, cg)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", name, c.what, err)
		}
		id := [2]uint64{uint64(ev.File.Dev), ev.File.Ino}
		st, _ := bpflsm.FileIDOf(o.merged + c.argv[0])
		fmt.Printf("BULWARK %s %s EPERM event=%s/%s path=%s kernel dev=%#x ino=%d compiled=%v stat dev=%#x ino=%d\n",
			name, c.what, ev.Verdict, ev.Reason, ev.Path, ev.File.Dev, ev.File.Ino, compiled[id], st.Dev, st.Ino)
		if ev.Verdict != bpflsm.VerdictRefused || ev.Path != c.argv[0] {
			return fmt.Errorf("%s: %s: event %+v", name, c.what, ev)
		}
		// With every layer on one filesystem inode numbers are unique and
		// the reason is exact; across filesystems (no xino) a new upper
		// file can share a lower file's number and be "modified" instead
		// (refused either way: its change time is not the listed one).
		if sameFS && (ev.Reason != c.reason || compiled[id] != c.listed || st.Dev != ev.File.Dev || st.Ino != ev.File.Ino) {
			return fmt.Errorf("%s: %s: reason %s, compiled %v, stat dev=%#x ino=%d; want %s, %v, the kernel's identity",
				name, c.what, ev.Reason, compiled[id], st.Dev, st.Ino, c.reason, c.listed)
		}
		if c.listed && !compiled[id] {
			return fmt.Errorf("%s: %s: the kernel's identity dev=%#x ino=%d is not one compiled", name, c.what, ev.File.Dev, ev.File.Ino)
		}
	}
	if err := enf.Unwatch(cg); err != nil {
		return err
	}
	return enf.Release(cg, comp)
}

// overlay runs overlayCase on an overlay with every layer on one
// filesystem (containerd's layout) and on one whose image layer is on
// another, then the learning window on a third.
func overlay() error {
	if err := loadOverlay(); err != nil {
		return err
	}
	enf, err := bpflsm.Load()
	if err != nil {
		return err
	}
	defer func() { _ = enf.Close() }()
	events := make(chan bpflsm.Event, 64)
	go func() {
		for {
			ev, err := enf.ReadEvent()
			if err != nil {
				return
			}
			events <- ev
		}
	}()
	ctx := context.Background()
	if err := overlayCase(ctx, enf, events, "ovl", true); err != nil {
		return err
	}
	if err := overlayCase(ctx, enf, events, "ovl2", false); err != nil {
		return err
	}
	return learning(ctx, enf, events) // learn.go

}
