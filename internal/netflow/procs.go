package netflow

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Procs lists the processes in the cgroup of pid (its container), read
// from cgroup.procs of its unified (v2) cgroup, else its v1 pids cgroup,
// under cgroupRoot ("" is /sys/fs/cgroup); just pid when neither is
// readable.
func Procs(proc, cgroupRoot string, pid int) []int {
	if proc == "" {
		proc = "/proc"
	}
	if cgroupRoot == "" {
		cgroupRoot = "/sys/fs/cgroup"
	}
	f, err := os.Open(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return []int{pid}
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[2] == "/" || strings.Contains(parts[2], "..") {
			// the root cgroup holds every process of the machine: not a container
			continue
		}
		switch parts[1] {
		case "": // unified: /sys/fs/cgroup (v2) or /sys/fs/cgroup/unified (hybrid)
			dirs = append(dirs, filepath.Join(cgroupRoot, parts[2]), filepath.Join(cgroupRoot, "unified", parts[2]))
		case "pids":
			dirs = append(dirs, filepath.Join(cgroupRoot, "pids", parts[2]))
		}
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		var out []int
		for _, l := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(l); err == nil {
				out = append(out, n)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return []int{pid}
}
