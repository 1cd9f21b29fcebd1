package agent

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

func TestParseMountinfo(t *testing.T) {
	in := `1510 1503 0:190 / / rw,relatime master:612 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1511 1510 0:193 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1512 1510 0:194 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1517 1510 8:1 /tmp/bwctl1 /ctl rw,relatime - ext4 /dev/vda rw
1518 1512 0:198 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw
1519 1510 8:1 /srv/a\040b /data\040dir ro,relatime shared:1 master:2 - ext4 /dev/vda rw
`
	all, err := parseMountinfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := execMounts(all)
	var points []string
	for _, e := range got {
		points = append(points, e.point)
	}
	if strings.Join(points, ",") != "/dev,/ctl,/dev/shm,/data dir" {
		t.Fatalf("exec mounts: %q, want /dev, /ctl, /dev/shm, /data dir (root and proc left out)", points)
	}
	if got[3].root != "/srv/a b" || got[0].dev != unix.Mkdev(0, 194) || got[1].fstype != "ext4" {
		t.Fatalf("parsed %+v", got)
	}
	for _, bad := range []string{
		"1 2 0:1 / /x rw - \n",              // no filesystem type
		"1 2 zero / /x rw - tmpfs t rw\n",   // bad device
		"1 2 0:1 x /x rw - tmpfs t rw\n",    // relative root
		"1 2 0:1 / x rw - tmpfs t rw\n",     // relative mount point
		"1 2 0:1 / /x rw tmpfs t rw\n",      // no separator
		"1 2 0:99999999999 / /x rw - t t\n", // device out of range
	} {
		if _, err := parseMountinfo([]byte(bad)); err == nil {
			t.Errorf("parseMountinfo(%q): no error", bad)
		}
	}
	// The agent's own table parses.
	if _, err := readMountinfo("self"); err != nil {
		t.Fatal(err)
	}
}

func TestLoaderName(t *testing.T) {
	for p, want := range map[string]bool{
		"/lib64/ld-linux-x86-64.so.2": true, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": true,
		"/lib/ld-musl-x86_64.so.1": true, "/lib/x86_64-linux-gnu/ld-2.31.so": true, "/lib/ld64.so.2": true,
		"/lib/ld.so.1": true, "/bin/ld": false, "/usr/bin/ld-wrapper": false, "/lib/libc.so.6": false, "": false,
	} {
		if got := loaderName(p); got != want {
			t.Errorf("loaderName(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestInterpreterLoad: a thread outside any exec is not loading an
// interpreter, and a thread that does not exist is an error.
func TestInterpreterLoad(t *testing.T) {
	if err := stackReadable(); err != nil {
		kerneltest.Skip(t, "kernel stacks unreadable here: %v", err)
	}
	if in, err := interpreterLoad(os.Getpid()); err != nil || in {
		t.Fatalf("this process: %v, %v; want false", in, err)
	}
	if _, err := interpreterLoad(1 << 30); err == nil {
		t.Fatal("a pid that does not exist: no error")
	}
}

// TestMemfdNoexecRefusesHostNamespace: the setting cannot be undone, so it
// is never made in the agent's own pid namespace.
func TestMemfdNoexecRefusesHostNamespace(t *testing.T) {
	before, _ := os.ReadFile("/proc/sys/vm/memfd_noexec")
	if err := setMemfdNoexec(os.Getpid()); err == nil || !strings.Contains(err.Error(), "shares the agent's pid namespace") {
		t.Fatalf("setMemfdNoexec(own pid): %v, want refused", err)
	}
	if after, _ := os.ReadFile("/proc/sys/vm/memfd_noexec"); string(after) != string(before) {
		t.Fatalf("vm.memfd_noexec went from %q to %q", before, after)
	}
}

// BenchmarkInterpreterLoad: what the loader check adds to an exec of a
// dynamic program in prevent (one read of a kernel stack, on the
// interpreter's event only).
func BenchmarkInterpreterLoad(b *testing.B) {
	if err := stackReadable(); err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if _, err := interpreterLoad(os.Getpid()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCoveredMounts: a Kubernetes pod's table (containerd's default /dev/shm
// tmpfs, then the sandbox's shm bound over it) has its first /dev/shm
// covered, as has a mount under a directory mounted over later; a sibling
// whose name only starts the same, the root, and what comes after are not.
// Before, the covered /dev/shm was logged as an ERROR ("not watched") for
// every pod of a real kubelet (TestGateOnRealKubelet's log).
func TestCoveredMounts(t *testing.T) {
	shmDefault := mountEntry{point: "/dev/shm", root: "/", fstype: "tmpfs", dev: 49}
	shmSandbox := mountEntry{point: "/dev/shm", root: "/", fstype: "tmpfs", dev: 59}
	data := mountEntry{point: "/data/cache", root: "/", fstype: "tmpfs", dev: 70}
	all := []mountEntry{
		{point: "/", root: "/", fstype: "overlay", dev: 40},
		{point: "/dev", root: "/", fstype: "tmpfs", dev: 41},
		shmDefault,
		{point: "/dev/shmx", root: "/", fstype: "tmpfs", dev: 50},
		data,
		{point: "/data", root: "/x", fstype: "ext4", dev: 60}, // over /data/cache's parent
		shmSandbox,
	}
	got := coveredMounts(all)
	if !got[shmDefault] || !got[data] || len(got) != 2 {
		t.Fatalf("covered %v, want the default /dev/shm and /data/cache only", got)
	}
}
