package bpflsm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

// TestWalkAllowedOverlay lists a container root that is an overlay, as
// containerd mounts one (every layer on one filesystem) and with its image
// layer on another filesystem. In the second, overlayfs reports a layer's
// device for a file, not its own; the LSM hooks see the overlay's (its
// super block's, which its directories report), so that is what must be
// listed. Before, such a root listed nothing and a watched container could
// run nothing. (That the hooks see these identities is proven in the qemu
// guest: TestGuestBPFLSM's overlay cases.)
func TestWalkAllowedOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting an overlay needs root")
	}
	app := append([]byte{0x7f, 'E', 'L', 'F'}, "app"...)
	h := sha256.Sum256(app)
	list, err := allowlist.FromInventory("sha256:img", []sbom.File{
		{Path: "/bin/app", Type: "file", Mode: "0755", Digest: allowlist.Digest(h).String()},
	}, allowlist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sameFS := range []bool{true, false} {
		t.Run(fmt.Sprintf("samefs=%v", sameFS), func(t *testing.T) {
			base := t.TempDir()
			if err := unix.Mount("tmpfs", base, "tmpfs", 0, "size=4m"); err != nil {
				t.Skipf("mounting tmpfs: %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
			lower, upper, work, merged := base+"/lower", base+"/upper", base+"/work", base+"/merged"
			for _, d := range []string{lower, upper, work, merged} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if !sameFS {
				if err := unix.Mount("tmpfs", lower, "tmpfs", 0, "size=1m"); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(lower+"/bin", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(lower+"/bin/app", app, 0o755); err != nil {
				t.Fatal(err)
			}
			opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
			if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
				t.Skipf("mounting overlay: %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
			// A file in the writable layer with the image's content, too.
			if err := os.WriteFile(merged+"/app-copy", app, 0o755); err != nil {
				t.Fatal(err)
			}
			var ids []FileID
			if _, err := walkAllowed(context.Background(), merged, list, allowlist.NewDigestCache(8), false,
				func(id FileID) error { ids = append(ids, id); return nil }); err != nil {
				t.Fatal(err)
			}
			var root, file unix.Stat_t
			if err := unix.Stat(merged, &root); err != nil {
				t.Fatal(err)
			}
			if err := unix.Stat(merged+"/bin/app", &file); err != nil {
				t.Fatal(err)
			}
			want := fileIDFromStat(&unix.Stat_t{Dev: root.Dev, Ino: file.Ino, Ctim: file.Ctim})
			if len(ids) != 2 || (ids[0] != want && ids[1] != want) {
				t.Fatalf("listed %+v, want bin/app as %+v (the overlay's device; stat says %#x) and its copy", ids, want, file.Dev)
			}
			for _, id := range ids {
				if id.Dev != want.Dev {
					t.Fatalf("listed %+v on device %#x, want the overlay's %#x", id, id.Dev, want.Dev)
				}
			}
			t.Logf("overlay device %#x, bin/app stat device %#x", want.Dev, file.Dev)
		})
	}
}
