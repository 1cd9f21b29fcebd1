package fanotify

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestMountReports: a mount attached in a watched namespace is reported
// with its unique id, is found in that namespace and listed there; its
// detach is reported with the same id, and it is then in no namespace.
func TestMountReports(t *testing.T) {
	w := mountNotify(t)
	ns, err := MountNSID("/proc/self/ns/mnt")
	if err != nil {
		kerneltest.Skip(t, "no mount namespace ids (Linux 6.10): %v", err)
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, 0, unix.STATX_MNT_ID_UNIQUE, &st); err != nil || st.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		unix.Unmount(dir, unix.MNT_DETACH)
		kerneltest.Skip(t, "no unique mount ids: %v", err)
	}
	id := st.Mnt_id
	if in, err := InMountNS(id, ns); err != nil || !in {
		t.Fatalf("InMountNS(the new mount, this namespace) = %v, %v; want true", in, err)
	}
	if in, err := InMountNS(id+1<<40, ns); err != nil || in {
		t.Fatalf("InMountNS(no such mount) = %v, %v; want false", in, err)
	}
	if ids, err := ListMounts(ns, nil); err != nil || !slices.Contains(ids, id) {
		t.Fatalf("ListMounts: %d ids, %v; want the new mount among them", len(ids), err)
	}
	waitReport(t, w, MountReport{ID: id, Attach: true})
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	waitReport(t, w, MountReport{ID: id, Detach: true})
	if in, err := InMountNS(id, ns); err != nil || in {
		t.Fatalf("InMountNS(a detached mount) = %v, %v; want false", in, err)
	}
	if _, err := MountNSID("/proc/self/ns/pid"); err == nil {
		t.Fatal("MountNSID of a pid namespace: no error")
	}
}

// waitReport reads reports until want comes (other mounts of the machine
// may be reported first), up to 5 s.
func waitReport(t *testing.T, w *Listener, want MountReport) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			rs, _, err := w.ReadMounts(buf, nil)
			if slices.Contains(rs, want) {
				got <- nil
				return
			}
			if err != nil && err != ErrOverflow {
				got <- err
				return
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no report %+v", want)
	}
}

// TestMountInfoBad: malformed information records are no mount id, not a
// panic.
func TestMountInfoBad(t *testing.T) {
	for _, b := range [][]byte{nil, {7}, {7, 0, 0, 0}, {7, 0, 200, 0, 1, 2, 3, 4}, {7, 0, 12, 0, 0, 0, 0, 0, 1, 2, 3, 4}, {1, 0, 4, 0}} {
		if id, ok := mountInfo(b); ok {
			t.Errorf("mountInfo(%v) = %d, want none", b, id)
		}
	}
	ok := []byte{7, 0, 16, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0}
	if id, found := mountInfo(ok); !found || id != 42 {
		t.Errorf("mountInfo(a record of mount 42) = %d, %v", id, found)
	}
}
