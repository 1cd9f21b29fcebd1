package agent

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxTree bounds the ancestors procTree names.
const maxTree = 8

// procTree names pid and its ancestors, nearest first, as "PID comm"
// joined by " < ", from /proc/PID/stat; it stops at PID 1, at a process
// gone, or after maxTree.
func procTree(pid int) string {
	var parts []string
	for range maxTree {
		if pid <= 0 {
			break
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			break
		}
		// "PID (comm) S PPID ...": comm may hold spaces and parentheses.
		open, shut := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || shut < open {
			break
		}
		parts = append(parts, strconv.Itoa(pid)+" "+string(b[open+1:shut]))
		f := strings.Fields(string(b[shut+1:]))
		if len(f) < 2 || pid == 1 {
			break
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return strings.Join(parts, " < ")
}

// recent remembers names by key for a second: a storm of drifted execs
// from one caller reads its process tree from /proc once (by PID), and
// names one file version once (by identity), not once per exec. A name
// remembered can be up to a second stale: a parent directory renamed, or
// another hard link of the same version (a new link or a rename changes
// the file's change time, so its identity) used to exec it; the digest
// reported is always the file's.
type recent[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]recentEntry[V]
}

type recentEntry[V any] struct {
	v  V
	at time.Time
}

const (
	recentTTL     = time.Second
	recentEntries = 4096
)

// get returns k's value as of now, from memory or from load.
func (c *recent[K, V]) get(k K, now time.Time, load func() V) V {
	c.mu.Lock()
	if e, ok := c.m[k]; ok && now.Sub(e.at) < recentTTL {
		c.mu.Unlock()
		return e.v
	}
	c.mu.Unlock()
	v := load()
	c.mu.Lock()
	if c.m == nil || len(c.m) >= recentEntries {
		c.m = map[K]recentEntry[V]{}
	}
	c.m[k] = recentEntry[V]{v, now}
	c.mu.Unlock()
	return v
}

// fdPath names the file open at fd, a readlink of /proc/self/fd/N, with
// one allocation (the name): it runs on the thread that reads the next
// exec.
func fdPath(fd int) string {
	var link [32]byte
	p := append(strconv.AppendInt(append(link[:0], "/proc/self/fd/"...), int64(fd), 10), 0)
	var buf [unix.PathMax]byte
	cwd := unix.AT_FDCWD
	n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(cwd), uintptr(unsafe.Pointer(&p[0])),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return ""
	}
	return string(buf[:n])
}
