package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
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
	bp := cgroupBufs.Get().(*[]byte)
	defer cgroupBufs.Put(bp)
	b, err := readAtMost(f, (*bp)[:0], maxCgroupFile)
	*bp = b
	if err != nil {
		return nil, fmt.Errorf("reading the cgroups of pid %d: %w", pid, err)
	}
	return parseCgroups(b), nil
}

// cgroupBufs saves allocating (and clearing) a buffer per exec.
var cgroupBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readAtMost appends what r holds, up to max bytes, to b.
func readAtMost(r io.Reader, b []byte, max int) ([]byte, error) {
	for len(b) < max {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), max)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// parseCgroups returns every element of every cgroup path, outermost
// first, decorations taken off: the caller takes the first that names a
// container. Not the last element alone: a process that can write its
// cgroup tree can make a cgroup below its own named after another
// container and move in; the outermost container of the path is its own
// (runtimes never nest one container's cgroup in another's;
// TestCgroupNamedAfterAnother).
func parseCgroups(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		for _, id := range strings.Split(parts[2], "/") {
			if s, ok := strings.CutSuffix(id, ".scope"); ok {
				id = s
				if i := strings.LastIndexByte(id, '-'); i >= 0 {
					id = id[i+1:]
				}
			}
			if id != "" && id != "." && id != ".." && !containsString(out, id) {
				out = append(out, id)
			}
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
