package main

import (
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ptraceCont resumes process pid, stopped, with no SIGCONT: PTRACE_ATTACH,
// then PTRACE_CONT until it runs (a tracer restarts a stopped tracee). A
// root process with the same capabilities as its target needs no
// CAP_SYS_PTRACE. Its own thread: ptrace requests come from the
// attaching thread, which exits with the goroutine (the tracee detached).
func ptraceCont(arg string) error {
	pid, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
		if err := unix.PtraceAttach(pid); err != nil {
			done <- err
			return
		}
		for range 10 {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
				break // gone, or running
			}
			if err := unix.PtraceCont(pid, 0); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		done <- nil
	}()
	return <-done
}
