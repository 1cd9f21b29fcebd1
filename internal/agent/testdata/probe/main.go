// Command probe runs inside the test containers: the image's entrypoint,
// serving commands on a unix socket in a directory the test bind-mounts.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "noop" {
		return
	}
	if reexecMain(os.Args) {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "escaped" {
		// Only reached when an exec the agent should have refused ran.
		os.WriteFile("/ctl/ESCAPED", []byte("escaped\n"), 0o644)
		os.Exit(3)
	}
	if len(os.Args) == 4 && os.Args[1] == "inns" {
		os.Exit(inNamespace(os.Args[2], os.Args[3]))
	}
	if len(os.Args) != 3 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: probe serve DIR | probe noop")
		os.Exit(2)
	}
	sock := filepath.Join(os.Args[2], "ctl.sock")
	os.Remove(sock)
	l, err := net.Listen("unix", sock+".tmp")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Rename(sock+".tmp", sock) // appears once listening
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintln(c, do(strings.Fields(line)))
		c.Close()
	}
}

func do(args []string) string {
	if len(args) == 0 {
		return "err empty"
	}
	switch {
	case args[0] == "run" && len(args) == 2:
		return errString(run(args[1]))
	case args[0] == "copy" && len(args) == 3:
		return errString(copyDrifted(args[1], args[2]))
	case args[0] == "contall" && len(args) == 1:
		// SIGCONT to every process of its pid namespace it may signal.
		return errString(syscall.Kill(-1, syscall.SIGCONT))
	case args[0] == "cont" && len(args) == 2:
		// SIGCONT to one process (a hostPID container reaches the host's).
		pid, err := strconv.Atoi(args[1])
		if err != nil {
			return errString(err)
		}
		return errString(syscall.Kill(pid, syscall.SIGCONT))
	case args[0] == "ptcont" && len(args) == 2:
		return errString(ptraceCont(args[1])) // ptrace.go
	case args[0] == "same" && len(args) == 3:
		// An exact copy of args[1]: the image's content at a new path.
		b, err := os.ReadFile(args[1])
		if err == nil {
			err = os.WriteFile(args[2], b, 0o755)
		}
		return errString(err)
	case args[0] == "modify" && len(args) == 2:
		f, err := os.OpenFile(args[1], os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			_, err = f.Write([]byte{0})
			f.Close()
		}
		return errString(err)
	case args[0] == "loop" && len(args) == 3:
		n, _ := strconv.Atoi(args[2])
		var eperm, ran, other int
		for range n {
			switch err := run(args[1]); {
			case err == nil:
				ran++
			case errors.Is(err, syscall.EPERM):
				eperm++
			default:
				other++
			}
		}
		return fmt.Sprintf("eperm=%d ran=%d other=%d", eperm, ran, other)
	case args[0] == "execloop" && len(args) == 3:
		// execve in place, no fork: a refused exec returns EPERM; one that
		// is not refused replaces this process, which then writes
		// /ctl/ESCAPED and exits, and no answer comes back.
		n, _ := strconv.Atoi(args[2])
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var eperm, other int
		argv := []string{args[1], "escaped"}
		for range n {
			if err := syscall.Exec(args[1], argv, nil); errors.Is(err, syscall.EPERM) {
				eperm++
			} else {
				other++
			}
		}
		return fmt.Sprintf("eperm=%d other=%d", eperm, other)
	case args[0] == "ldso" && len(args) == 3:
		// The loader trick: the ELF interpreter runs a program itself.
		return errString(runArgs(args[1], args[1], args[2]))
	case args[0] == "deleted" && len(args) == 3:
		// A drifted copy of args[1], opened, unlinked, and exec'd through
		// /proc/self/fd/N ("proc") or execveat(fd, "", AT_EMPTY_PATH) in
		// place ("at": a success replaces the probe, which then writes
		// /ctl/ESCAPED).
		dst := "/tmp/deleted-drift"
		if err := copyDrifted(args[1], dst); err != nil {
			return errString(err)
		}
		fd, err := syscall.Open(dst, syscall.O_RDONLY, 0)
		if err != nil {
			return errString(err)
		}
		defer syscall.Close(fd)
		if err := os.Remove(dst); err != nil {
			return errString(err)
		}
		return errString(fdExec(fd, args[2]))
	case args[0] == "userns" && len(args) == 3:
		// A user and mount namespace of its own (no capability needed
		// where the kernel and seccomp allow it): the probe again, which
		// runs args[2] there ("inns").
		self, _ := os.Executable()
		pid, err := syscall.ForkExec(self, []string{self, "inns", args[1], args[2]}, &syscall.ProcAttr{Env: []string{},
			Sys: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}}})
		if err != nil {
			return "err namespace: " + err.Error()
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		return escapedStatus(ws.ExitStatus())
	case args[0] == "fsmount" && len(args) == 2:
		// A drifted copy of args[1] on a fresh tmpfs mounted nowhere
		// (fsopen, fsmount; needs CAP_SYS_ADMIN), run through its
		// descriptor.
		mfd, err := detachedTmpfs()
		if err != nil {
			return errString(err)
		}
		defer syscall.Close(mfd)
		dir := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), mfd)
		if err := copyDrifted(args[1], dir+"/drift"); err != nil {
			return errString(err)
		}
		return escapedStatus(runEscaped(dir + "/drift"))
	case args[0] == "mount" && len(args) == 2:
		// A tmpfs at args[1] in the container's own mount namespace (needs
		// CAP_SYS_ADMIN).
		if err := os.MkdirAll(args[1], 0o755); err != nil {
			return errString(err)
		}
		return errString(syscall.Mount("t", args[1], "tmpfs", 0, ""))
	case args[0] == "remount" && len(args) == 2:
		// The mount at args[1] made exec (noexec dropped; needs
		// CAP_SYS_ADMIN).
		return errString(syscall.Mount("", args[1], "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_NOSUID|syscall.MS_NODEV, ""))
	case args[0] == "bind" && len(args) == 3:
		// args[1] bound at args[2] in the container's own mount namespace
		// (needs CAP_SYS_ADMIN).
		if err := os.MkdirAll(args[2], 0o755); err != nil {
			return errString(err)
		}
		return errString(syscall.Mount(args[1], args[2], "", syscall.MS_BIND, ""))
	case args[0] == "reuse" && len(args) == 4:
		// The filesystem at args[2] unmounted (lazily: a plain umount of
		// a filesystem the agent pins is refused) and a fresh tmpfs mounted at
		// args[3] at once (the kernel may give it the same device number),
		// a drifted copy of args[1] run from it before anyone looks.
		var was, now syscall.Stat_t
		if err := syscall.Stat(args[2], &was); err != nil {
			return errString(err)
		}
		if err := syscall.Unmount(args[2], syscall.MNT_DETACH); err != nil {
			return errString(err)
		}
		if err := os.MkdirAll(args[3], 0o755); err != nil {
			return errString(err)
		}
		if err := syscall.Mount("t", args[3], "tmpfs", 0, ""); err != nil {
			return errString(err)
		}
		if err := syscall.Stat(args[3], &now); err != nil {
			return errString(err)
		}
		if err := copyDrifted(args[1], args[3]+"/drift"); err != nil {
			return errString(err)
		}
		return fmt.Sprintf("%s now=%d same-device=%v", escapedStatus(runEscaped(args[3]+"/drift")), now.Dev, was.Dev == now.Dev)
	case args[0] == "mountrun" && len(args) == 4:
		// args[3] rounds of: a fresh tmpfs at args[2]/N, a drifted copy of
		// args[1] run from it at once (before the agent marks it); how
		// each ended, counted.
		n, _ := strconv.Atoi(args[3])
		count := map[string]int{}
		for i := range n {
			d := filepath.Join(args[2], strconv.Itoa(i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return errString(err)
			}
			if err := syscall.Mount("t", d, "tmpfs", 0, ""); err != nil {
				return errString(err)
			}
			if err := copyDrifted(args[1], d+"/drift"); err != nil {
				return errString(err)
			}
			count[errString(run(d+"/drift"))]++
		}
		return fmt.Sprint(count)
	case args[0] == "cgmove" && len(args) == 2:
		// The probe moves itself into a cgroup named args[1] below its
		// own, in every hierarchy (needs CAP_SYS_ADMIN and the host's
		// cgroup namespace); answers how many it moved in.
		return cgMove(args[1])
	case args[0] == "flood" && len(args) == 3:
		// For args[2] milliseconds: a tmpfs mounted at args[1] and
		// unmounted (lazily: the agent may pin it), again and again
		// (needs CAP_SYS_ADMIN); answers how many rounds.
		ms, _ := strconv.Atoi(args[2])
		if err := os.MkdirAll(args[1], 0o755); err != nil {
			return errString(err)
		}
		n := 0
		for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); n++ {
			if err := syscall.Mount("t", args[1], "tmpfs", 0, ""); err != nil {
				return errString(err)
			}
			if err := syscall.Unmount(args[1], syscall.MNT_DETACH); err != nil {
				return errString(err)
			}
		}
		return fmt.Sprintf("ok %d", n)
	case args[0] == "umount" && len(args) == 2:
		return errString(syscall.Unmount(args[1], 0))
	case args[0] == "binds" && len(args) == 4:
		// args[3] binds of args[1] at args[2]/0, args[2]/1, ...
		n, _ := strconv.Atoi(args[3])
		for i := range n {
			d := filepath.Join(args[2], strconv.Itoa(i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return errString(err)
			}
			if err := syscall.Mount(args[1], d, "", syscall.MS_BIND, ""); err != nil {
				return errString(err)
			}
		}
		return "ok"
	case args[0] == "memfdnoexec" && len(args) == 2:
		// vm.memfd_noexec of its pid namespace set to args[1], through a
		// proc of its own (the container's /proc/sys is read-only; needs
		// CAP_SYS_ADMIN over its pid namespace); answers the value read
		// back.
		if err := os.MkdirAll("/tmp/proc", 0o755); err != nil {
			return errString(err)
		}
		if err := syscall.Mount("proc", "/tmp/proc", "proc", 0, ""); err != nil {
			return errString(err)
		}
		defer syscall.Unmount("/tmp/proc", syscall.MNT_DETACH)
		if err := os.WriteFile("/tmp/proc/sys/vm/memfd_noexec", []byte(args[1]+"\n"), 0); err != nil {
			return errString(err)
		}
		b, err := os.ReadFile("/tmp/proc/sys/vm/memfd_noexec")
		if err != nil {
			return errString(err)
		}
		return "value " + strings.TrimSpace(string(b))
	case args[0] == "memfd" && len(args) == 3:
		// A drifted copy of args[1] in a memfd, exec'd as "deleted" does.
		fd, err := memfdCopy(args[1])
		if err != nil {
			return errString(err)
		}
		defer syscall.Close(fd)
		return errString(fdExec(fd, args[2]))
	}
	return "err unknown command"
}

// runArgs execs path with argv and waits: nil when it exited 0.
func runArgs(path string, argv ...string) error {
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: []string{}})
	if err != nil {
		return err
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		return err
	}
	if ws.ExitStatus() != 0 {
		return fmt.Errorf("exit %d", ws.ExitStatus())
	}
	return nil
}

// fdExec execs the file open at fd: how is "proc" or "at" (see "deleted").
func fdExec(fd int, how string) error {
	if how == "proc" {
		p := "/proc/self/fd/" + strconv.Itoa(fd)
		return runArgs(p, p, "noop")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	empty, _ := syscall.BytePtrFromString("")
	argv, _ := syscall.SlicePtrFromStrings([]string{"drift", "escaped"})
	envv, _ := syscall.SlicePtrFromStrings(nil)
	_, _, e := syscall.Syscall6(322, uintptr(fd), uintptr(unsafe.Pointer(empty)), // execveat, amd64
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), 0x1000, 0) // AT_EMPTY_PATH
	return e
}

// memfdCopy makes a memfd (no flags: what the pid namespace's
// vm.memfd_noexec allows) holding a drifted copy of src.
func memfdCopy(src string) (int, error) {
	name, _ := syscall.BytePtrFromString("drift")
	r, _, e := syscall.Syscall(319, uintptr(unsafe.Pointer(name)), 0, 0) // memfd_create, amd64
	if e != 0 {
		return -1, e
	}
	fd := int(r)
	b, err := os.ReadFile(src)
	if err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if _, err := syscall.Write(fd, append(b, 0)); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// run execs path with "noop" and waits: nil when the program ran and exited 0.
func run(path string) error {
	pid, err := syscall.ForkExec(path, []string{path, "noop"}, &syscall.ProcAttr{Env: []string{}})
	if err != nil {
		return err
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		return err
	}
	if ws.ExitStatus() != 0 {
		return fmt.Errorf("exit %d", ws.ExitStatus())
	}
	return nil
}

// copyDrifted copies src to dst with one byte appended: a binary that is in
// no image.
func copyDrifted(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	out.Write([]byte{0})
	return out.Close()
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	if errors.Is(err, syscall.EPERM) {
		return "eperm"
	}
	return "err " + err.Error()
}

// inNamespace runs in a mount namespace of its own: "tmpfs" mounts a fresh
// tmpfs and runs a drifted copy of src from it; a path runs that file (a
// copy of the container's mounts reaches it). 0: it ran (and wrote
// /ctl/ESCAPED); 9: SIGKILL ended it; 10: EPERM.
func inNamespace(src, what string) int {
	target := what
	if what == "tmpfs" {
		if err := syscall.Mount("t", "/tmp", "tmpfs", 0, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mounting:", err)
			return 2
		}
		target = "/tmp/drift"
		if err := copyDrifted(src, target); err != nil {
			return 3
		}
	}
	return runEscaped(target)
}

// runEscaped runs target with "escaped": its first act, if it runs, is
// /ctl/ESCAPED (exit 3). 0: it ran; 9: SIGKILL ended it; 10: EPERM.
func runEscaped(target string) int {
	pid, err := syscall.ForkExec(target, []string{target, "escaped"}, &syscall.ProcAttr{Env: []string{}})
	if errors.Is(err, syscall.EPERM) {
		return 10
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return 9
	case ws.Exited() && ws.ExitStatus() == 3:
		return 0
	}
	fmt.Fprintln(os.Stderr, "status", ws)
	return 4
}

// escapedStatus names a runEscaped status.
func escapedStatus(code int) string {
	switch code {
	case 0:
		return "ok"
	case 9:
		return "killed"
	case 10:
		return "eperm"
	}
	return fmt.Sprintf("err exit %d", code)
}

// detachedTmpfs makes a tmpfs attached nowhere and returns its mount's
// descriptor.
func detachedTmpfs() (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
}

// cgMove mounts each hierarchy of /proc/self/cgroup under /tmp/cgN and
// moves the probe into a new cgroup name below its own there.
func cgMove(name string) string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return errString(err)
	}
	moved := 0
	var errs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		dir := "/tmp/cg" + parts[0]
		os.MkdirAll(dir, 0o755)
		var err error
		if parts[1] == "" {
			err = syscall.Mount("none", dir, "cgroup2", 0, "")
		} else {
			opts := parts[1]
			if strings.HasPrefix(opts, "name=") {
				opts = "none," + opts
			}
			err = syscall.Mount("none", dir, "cgroup", 0, opts)
		}
		if err != nil {
			errs = append(errs, parts[1]+": mount: "+err.Error())
			continue
		}
		parent := filepath.Join(dir, parts[2])
		target := filepath.Join(parent, name)
		os.Mkdir(target, 0o755)
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
				os.WriteFile(filepath.Join(target, f), v, 0)
			}
		}
		if err := os.WriteFile(filepath.Join(target, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			errs = append(errs, parts[1]+": "+err.Error())
			continue
		}
		moved++
	}
	return fmt.Sprintf("moved %d %q", moved, errs)
}
