// Package failpoint kills the process at a named point, for crash-safety
// tests: BULWARK_FAILPOINT=name:n makes the n-th Hit(name) (default the
// first) send SIGKILL to the process itself, exactly what `kill -9` does.
// Without the variable, Hit is one atomic load and does nothing.
//
// The crash tests (internal/server/crash_test.go) start `bulwark server`
// as a child process with a failpoint set, let it die mid-work, restart it
// without one and check that nothing was lost or done twice.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Env is the environment variable that arms a failpoint.
const Env = "BULWARK_FAILPOINT"

var (
	once  sync.Once
	armed string
	after int64
	hits  atomic.Int64
)

func load() {
	v := os.Getenv(Env)
	if v == "" {
		return
	}
	name, n, _ := strings.Cut(v, ":")
	armed, after = name, 1
	if k, err := strconv.ParseInt(n, 10, 64); err == nil && k > 0 {
		after = k
	}
}

// Hit kills the process if the failpoint name is armed and this is its
// n-th hit.
func Hit(name string) {
	once.Do(load)
	if armed == "" || armed != name {
		return
	}
	if hits.Add(1) == after {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
