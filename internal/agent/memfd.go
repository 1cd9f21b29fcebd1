package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A memfd (memfd_create, then execveat(fd, "", AT_EMPTY_PATH) or an exec of
// /proc/self/fd/N) lives on the kernel's internal shmem mount, which
// fanotify cannot mark (EINVAL, measured): its execs raise no event.
// Linux 6.3 added vm.memfd_noexec, kept per pid namespace: at 2, a memfd
// created without MFD_NOEXEC_SEAL gets it (no execute bit, and none can be
// added) and MFD_EXEC is refused. A pid namespace cannot set it lower than
// its parent's, but since Linux 6.6 (the ratchet became a hierarchy) a
// process with CAP_SYS_ADMIN over the namespace can lower its own again:
// a container with CAP_SYS_ADMIN (or with it in a user namespace that owns
// its pid namespace) can undo it (TestMemfdNoexecLowered); the exec
// sensor's kill then stands (unheldkill.go). One without cannot. In
// prevent, the agent sets it in the container's pid namespace at adoption,
// from a short-lived child that it forks into that namespace (a process
// only reads and writes the value of the namespace it is in). runc and
// containerd make their memfds in the host's namespace: unaffected
// (tested).

// memfdNoexec makes memfds unexecutable in the pid namespace of c's init,
// pid; a failure is logged: memfd execs in c are then not refused.
func (a *Agent) memfdNoexec(c *container, pid int) {
	if err := setMemfdNoexec(pid); err != nil && a.procMon.Load() != nil {
		a.log.Warn("memfd execs in this container are killed by the exec sensor, not refused", "container", c.id, "error", err.Error())
	} else if err != nil {
		a.log.Error("memfd execs are not refused in this container", "container", c.id, "error", err.Error())
	}
}

// setMemfdNoexec sets vm.memfd_noexec to 2 in the pid namespace of pid. It
// refuses a process in the agent's own pid namespace: the setting would
// then hold for the host, for good.
func setMemfdNoexec(pid int) error {
	ns := filepath.Join(procRoot, strconv.Itoa(pid), "ns", "pid")
	var theirs, ours unix.Stat_t
	if err := unix.Stat(ns, &theirs); err != nil {
		return fmt.Errorf("reading the pid namespace of %d: %w", pid, err)
	}
	if err := unix.Stat(filepath.Join(procRoot, "self", "ns", "pid"), &ours); err != nil {
		return fmt.Errorf("reading the agent's pid namespace: %w", err)
	}
	if theirs.Dev == ours.Dev && theirs.Ino == ours.Ino {
		return errors.New("the container shares the agent's pid namespace: vm.memfd_noexec would hold for the host")
	}
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the pid namespace of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread's children now start in the
		// container's namespace; Go ends the thread with the goroutine.
		runtime.LockOSThread()
		done <- writeInPidns(fd)
	}()
	if err := <-done; err != nil {
		return fmt.Errorf("setting vm.memfd_noexec in the pid namespace of %d: %w", pid, err)
	}
	return nil
}

// writeInPidns forks, from the calling (locked) thread, a child into the
// pid namespace nsfd that writes 2 to /proc/sys/vm/memfd_noexec.
func writeInPidns(nsfd int) error {
	if err := unix.Setns(nsfd, unix.CLONE_NEWPID); err != nil {
		return fmt.Errorf("joining the namespace for children: %w", err)
	}
	path, err := unix.BytePtrFromString("/proc/sys/vm/memfd_noexec")
	if err != nil {
		return err
	}
	val := []byte("2\n")
	// No Go signal handler may run in the child: block them all across
	// the fork (the child inherits the mask).
	all := unix.Sigset_t{Val: [16]uint64{^uint64(0)}}
	var old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
		return fmt.Errorf("blocking signals: %w", err)
	}
	pid, errno := forkWrite(path, &val[0], uintptr(len(val)))
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	runtime.KeepAlive(val)
	if errno != 0 {
		return fmt.Errorf("forking: %w", errno)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for the child: %w", err)
		}
		break
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		if ws.Exited() {
			return fmt.Errorf("writing /proc/sys/vm/memfd_noexec: %w", syscall.Errno(ws.ExitStatus()))
		}
		return fmt.Errorf("the child ended by %v", ws.Signal())
	}
	return nil
}

// atFDCWD is AT_FDCWD (-100) as a system call argument.
const atFDCWD = ^uintptr(99)

// forkWrite forks; the child writes n bytes of val to path and exits with
// the errno of what failed (0 when all went well). The child makes raw
// system calls only: it is a copy of one thread of a Go process, whose
// runtime must not run there.
//
//go:norace
//go:nosplit
func forkWrite(path, val *byte, n uintptr) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(path)), syscall.O_WRONLY, 0, 0, 0)
	if e == 0 {
		_, _, e = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(val)), n)
	}
	for {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(e), 0, 0)
	}
}
