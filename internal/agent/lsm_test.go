package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

// TestCgroup2Mount finds the cgroup v2 hierarchy in mountinfo on a hybrid
// host (unified under /sys/fs/cgroup/unified, escapes undone) and says so
// when there is none.
func TestCgroup2Mount(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		mountinfoPath = filepath.Join(dir, "mountinfo")
		if err := os.WriteFile(mountinfoPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer func(p string) { mountinfoPath = p }(mountinfoPath)
	write("25 1 0:22 / /sys rw,nosuid - sysfs sysfs rw\n" +
		"30 25 0:26 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs ro\n" +
		"31 30 0:27 / /sys/fs/cgroup/unified\\040v2 rw,nosuid shared:10 - cgroup2 cgroup2 rw\n" +
		"32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
	got, err := cgroup2Mount()
	if err != nil || got != "/sys/fs/cgroup/unified v2" {
		t.Fatalf("hybrid: %q, %v", got, err)
	}
	write("25 1 0:22 / /sys rw,nosuid - sysfs sysfs rw\n32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
	if _, err := cgroup2Mount(); err == nil {
		t.Fatal("no cgroup2 mount: no error")
	}
}

// TestCgroupIDOfSelf reads this process's cgroup v2 id the way the agent
// reads a container's: the inode of its v2 directory.
func TestCgroupIDOfSelf(t *testing.T) {
	if _, err := cgroup2Mount(); err != nil {
		kerneltest.Skip(t, "no cgroup v2 here: %v", err)
	}
	id, err := cgroupID(os.Getpid())
	if err != nil || id == 0 {
		t.Fatalf("cgroupID(self) = %d, %v", id, err)
	}
}
