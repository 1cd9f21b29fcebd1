package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// reexecMain runs "spawnreexec CGDIR", the parent that starts
// "reexec CGDIR" and exits with its status, and "reexec CGDIR", which
// joins the cgroup CGDIR and re-executes itself from an exact copy of its
// binary in a memfd, as runc 1.1's `runc init` does (the cloned binary),
// running "noop". It says whether args named one of them.
func reexecMain(args []string) bool {
	if len(args) != 3 {
		return false
	}
	switch args[1] {
	case "spawnreexec":
		self, _ := os.Executable()
		cmd := exec.Command(self, "reexec", args[2])
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "reexec":
		if err := reexec(args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		return false
	}
	return true
}

func reexec(cg string) error {
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte("0"), 0o644); err != nil {
		return err
	}
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return err
	}
	fd, err := unix.MemfdCreate("runc_cloned:/proc/self/exe", unix.MFD_CLOEXEC)
	if err != nil {
		return err
	}
	mem := os.NewFile(uintptr(fd), "memfd")
	if _, err := io.Copy(mem, self); err != nil {
		return err
	}
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	return syscall.Exec(p, []string{"probe", "noop"}, nil)
}
