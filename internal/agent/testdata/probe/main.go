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
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "noop" {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "escaped" {
		// Only reached when an exec the agent should have refused ran.
		os.WriteFile("/ctl/ESCAPED", []byte("escaped\n"), 0o644)
		os.Exit(3)
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
	}
	return "err unknown command"
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
