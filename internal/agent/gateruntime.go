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
// re-executing itself: runc 1.1's `runc init` re-executes its own binary
// through a file descriptor (/dev/fd/N: a memfd copy, the cloned binary,
// or with the CVE-2024-21626 fixes, as Debian's 1.1.5 here, a detached
// read-only bind mount of the binary itself), racing its parent's join of it to the container's
// cgroup, so a gate with a cgroup scope can hold it there. containerd then
// names the task with pid 0, after its 2 s state timeout (the shim is busy
// creating it): errNoTask, 2 s late. This is told from /proc first: the
// program is its parent's program file, or an unlinked file (no name: not
// a file of the container's filesystem or a volume) with that file's
// content byte for byte, and the parent is a host process (outside the
// gate's scope: runc, not a container's process). A process that passes
// can only run its host parent's program (runc, the shim), a runtime the
// host runs already, never a program of the container's choosing. Like errNoTask it is
// continued, its cgroup not let through.
func (a *Agent) runtimeReexec(ev execmon.Event) bool {
	if ev.PPID == 0 {
		return false
	}
	if dir := a.gateDir(); dir == "" || inCgroup(int(ev.PPID), dir) {
		return false // without a scope the runtime is never held
	}
	return sameProgram(int(ev.PID), int(ev.PPID), a.memfdDev)
}

// maxRuntimeBinary bounds what sameProgram compares (runc is 10-15 MB).
const maxRuntimeBinary = 64 << 20

// sameProgram says whether process a runs the file process b runs
// (/proc/PID/exe), or an unlinked file (no link left, or on memfd's
// device) of the same size and content.
func sameProgram(a, b int, memfd uint64) bool {
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
	var st, sb unix.Stat_t
	if unix.Fstat(int(fa.Fd()), &st) != nil || unix.Fstat(int(fb.Fd()), &sb) != nil {
		return false
	}
	if st.Dev == sb.Dev && st.Ino == sb.Ino {
		return true // the same file: runc's read-only bind of its own binary
	}
	if (st.Nlink != 0 && (memfd == 0 || st.Dev != memfd)) || st.Size != sb.Size || st.Size > maxRuntimeBinary {
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
