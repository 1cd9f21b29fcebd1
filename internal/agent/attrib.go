package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
)

// maxCgroupFile bounds what is read of /proc/PID/cgroup.
const maxCgroupFile = 64 << 10

// procRoot is where /proc is (a variable for tests).
var procRoot = "/proc"

// cgroupCandidates reads /proc/PID/cgroup and returns the container ids its
// paths may name, from every hierarchy (cgroup v1 and v2 alike): the last
// element of each path, with the systemd scope decorations runtimes add
// ("cri-containerd-ID.scope", "docker-ID.scope") taken off.
func cgroupCandidates(pid int) ([]string, error) {
	f, err := os.Open(path.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil, fmt.Errorf("reading the cgroups of pid %d: %w", pid, err)
	}
	defer f.Close()
	buf := make([]byte, maxCgroupFile)
	n, _ := f.Read(buf)
	return parseCgroups(buf[:n]), nil
}

func parseCgroups(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		id := path.Base(parts[2])
		if s, ok := strings.CutSuffix(id, ".scope"); ok {
			id = s
			if i := strings.LastIndexByte(id, '-'); i >= 0 {
				id = id[i+1:]
			}
		}
		if id != "" && id != "." && !containsString(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
