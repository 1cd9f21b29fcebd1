package agent

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// The loader trick: `/lib64/ld-linux-x86-64.so.2 /tmp/x` execs the image's
// own ELF interpreter, which then opens and maps /tmp/x itself; the kernel
// raises no exec event for /tmp/x. The interpreter is in the image, so the
// allowlist alone lets it run.
//
// Fanotify sees the interpreter in two cases, both as an exec of it by the
// same thread (measured on 6.18, docs/decisions-runtime.md):
//   - a normal exec of a dynamic program: first the program
//     (do_open_execat <- alloc_bprm <- do_execveat_common), then, within
//     the same execve, the kernel's open of its PT_INTERP
//     (do_open_execat <- open_exec <- load_elf_binary <- bprm_execve);
//   - a direct exec of the interpreter: only the first kind.
//
// The thread is held in the kernel while the agent decides, so its kernel
// stack (/proc/TID/stack; FAN_REPORT_TID names the very thread) says which
// of the two it is, and a process cannot forge it. An exec of a file the
// image holds as its interpreter that is not the kernel loading some
// program's PT_INTERP is drift, unless the image's entrypoint is the
// interpreter itself.

// ReasonLoader: the ELF interpreter executed directly (the loader trick).
const ReasonLoader = "loader"

// loaderName tells an ELF interpreter by the name the image gives it:
// ld-linux-x86-64.so.2, ld-linux-aarch64.so.1, ld-musl-x86_64.so.1,
// ld-2.31.so, ld.so.1, ld64.so.2.
func loaderName(p string) bool {
	b := path.Base(p)
	return (strings.HasPrefix(b, "ld-") || strings.HasPrefix(b, "ld.so") || strings.HasPrefix(b, "ld64.so")) &&
		strings.Contains(b, ".so")
}

// entrypointOf is the program the image config runs: entrypoint, else cmd.
func entrypointOf(entrypoint, cmd []string) string {
	if len(entrypoint) > 0 {
		return entrypoint[0]
	}
	if len(cmd) > 0 {
		return cmd[0]
	}
	return ""
}

// maxStack bounds what is read of /proc/TID/stack.
const maxStack = 16 << 10

// interpreterLoad reports whether thread tid, held on an exec event, is the
// kernel loading an ELF program's interpreter (its stack passes through
// load_elf_binary) rather than an execve of the file itself.
func interpreterLoad(tid int) (bool, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(tid), "stack"))
	if err != nil {
		return false, fmt.Errorf("reading the kernel stack of %d: %w", tid, err)
	}
	defer f.Close()
	b, err := readAtMost(f, make([]byte, 0, 2048), maxStack)
	if err != nil {
		return false, fmt.Errorf("reading the kernel stack of %d: %w", tid, err)
	}
	return bytes.Contains(b, []byte("load_elf_binary")) || bytes.Contains(b, []byte("load_elf_fdpic_binary")), nil
}

// stackReadable probes whether the kernel shows task stacks with function
// names (CONFIG_STACKTRACE and kallsyms, and the agent may read them; its
// own read runs through proc_pid_stack): without, direct interpreter execs
// cannot be told apart and are allowed, rather than every dynamic exec
// refused.
func stackReadable() error {
	b, err := os.ReadFile(filepath.Join(procRoot, "thread-self", "stack"))
	if err != nil {
		return fmt.Errorf("reading a kernel stack: %w", err)
	}
	if !bytes.Contains(b, []byte("proc_pid_stack")) {
		return fmt.Errorf("reading a kernel stack: no function names in %.200q", b)
	}
	return nil
}

// directLoader reports whether an exec allowed by the image (imagePath is an
// image path of its content) by thread tid is a direct exec of the ELF
// interpreter that c's image does not ask for. An unreadable stack is
// treated as direct: refused in prevent, reported in detect.
func (a *Agent) directLoader(c *container, tid int, imagePath string) bool {
	if !a.loaderChecks || c.loaderEntry || !loaderName(imagePath) {
		return false
	}
	interp, err := interpreterLoad(tid)
	if err != nil {
		a.log.Warn("telling an interpreter load from a direct exec", "pid", tid, "error", err.Error())
		return true
	}
	return !interp
}
