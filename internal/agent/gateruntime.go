package agent

import (
	"bytes"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/execmon"
)

// runtimeReexec says whether the held exec ev is a container runtime
// re-executing itself: runc 1.1's `runc init` copies its own binary into a
// memfd and execs that (the cloned binary), racing its parent's join of it
// to the container's cgroup, so a gate with a cgroup scope can hold it
// there. containerd then names the task with pid 0, after its 2 s state
// timeout (the shim is busy creating it): errNoTask, 2 s late. This is
// told from /proc first: the program is a memfd with its parent's
// program's content, byte for byte, and the parent is a host process
// (outside the gate's scope: runc, not a container's process). The
// container's own first exec cannot pass: it is a file of its filesystem
// or a volume, not a memfd made by the exec'ing process; a process that
// gets here can only run its parent's program, which a host process runs
// already. Like errNoTask it is continued, its cgroup not let through.
func (a *Agent) runtimeReexec(ev execmon.Event) bool {
	if ev.PPID == 0 || unix.Mkdev(ev.Dev>>20, ev.Dev&(1<<20-1)) != a.memfdDev || a.memfdDev == 0 {
		return false
	}
	if dir := a.gateDir(); dir == "" || inCgroup(int(ev.PPID), dir) {
		return false // without a scope the runtime is never held
	}
	return sameProgram(int(ev.PID), int(ev.PPID))
}

// maxRuntimeBinary bounds what sameProgram compares (runc is 10-15 MB).
const maxRuntimeBinary = 64 << 20

// sameProgram says whether processes a and b run files of the same size
// and content (/proc/PID/exe).
func sameProgram(a, b int) bool {
	fa, err := os.Open(procRoot + "/" + strconv.Itoa(a) + "/exe")
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(procRoot + "/" + strconv.Itoa(b) + "/exe")
	if err != nil {
		return false
	}
	defer fb.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false
	}
	sb, err := fb.Stat()
	if err != nil || sa.Size() != sb.Size() || sa.Size() > maxRuntimeBinary {
		return false
	}
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea
		}
		if ea != nil || eb != nil {
			return false
		}
	}
}
