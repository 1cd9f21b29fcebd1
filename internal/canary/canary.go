package canary

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Timeout bounds one canary exec: a mechanism that holds the exec longer
// (a listener that stopped answering) is broken.
const Timeout = 5 * time.Second

// FailedError says the canary exec was not refused: Ran when the drifted
// program ran, else Err is what the exec did instead.
type FailedError struct {
	Ran bool
	Err error
}

func (e *FailedError) Error() string {
	if e.Ran {
		return "canary: a drifted file ran (exec not refused)"
	}
	return fmt.Sprintf("canary: exec of a drifted file was not refused with EPERM: %v", e.Err)
}

func (e *FailedError) Unwrap() error { return e.Err }

// Options say where the canary runs.
type Options struct {
	// Dir is where the drifted file is written (a watched filesystem).
	Dir string
	// Cgroup, when not empty, is a cgroup v2 directory the helper joins
	// before its exec: the cgroup the BPF-LSM program watches.
	Cgroup string
}

// Run writes a fresh drifted file into o.Dir, execs it in a child and
// returns nil when the exec failed with EPERM. A *FailedError says
// enforcement is not working; any other error says the canary could not be
// set up (nothing was proven either way).
func Run(ctx context.Context, o Options) error {
	f, err := os.CreateTemp(o.Dir, "drift-*")
	if err != nil {
		return fmt.Errorf("writing the canary file in %q: %w", o.Dir, err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, werr := f.Write(Program())
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(name, 0o700)); err != nil {
		return fmt.Errorf("writing the canary file %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	// The caller never forks into the exec itself: Go forks with vfork,
	// and a parent suspended in vfork while its child's exec waits for the
	// same process's fanotify answer stops the Go runtime (the garbage
	// collector cannot stop the world). A helper (this program again, on
	// an unwatched filesystem) moves itself into the cgroup and execs the
	// drifted file in place.
	// /proc/self/exe execs this program even when its file was replaced
	// or deleted since (an upgrade in place).
	cmd := exec.CommandContext(ctx, helperPath)
	cmd.Env = []string{helperEnv + "=" + name, helperCgroupEnv + "=" + o.Cgroup}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == exitDrifted:
		return &FailedError{Ran: true}
	case ctx.Err() != nil:
		return &FailedError{Err: fmt.Errorf("exec not answered within %s", Timeout)}
	case errors.As(err, &ee) && ee.ExitCode() == exitRefused:
		return nil
	case errors.As(err, &ee) && ee.ExitCode() == exitSetup:
		return fmt.Errorf("running the canary helper: %s", bytes.TrimSpace(out))
	case errors.As(err, &ee) && ee.ExitCode() == exitOther:
		return &FailedError{Err: errors.New(string(bytes.TrimSpace(out)))}
	}
	// Anything else is not the helper's answer nor the drifted program's
	// (a program that never calls MaybeHelper ran itself again): nothing
	// was proven either way.
	return fmt.Errorf("the canary helper did not answer (does the program call canary.MaybeHelper first?): %v: %s",
		err, bytes.TrimSpace(out))
}

// ProgramExit is the exit status of Program, the drifted file: it ran.
const ProgramExit = 42

// exitDrifted is what the helper's exec of the drifted file ends with
// when it ran.
const exitDrifted = ProgramExit

// helperPath is the helper program: this one (a variable for tests).
var helperPath = "/proc/self/exe"

// The helper's environment and exit codes.
const (
	helperEnv       = "BULWARK_CANARY_EXEC"
	helperCgroupEnv = "BULWARK_CANARY_CGROUP"
	exitRefused     = 77
	exitSetup       = 78
	exitOther       = 79
)

// MaybeHelper runs the canary helper and exits when this process was
// started as one; otherwise it returns at once. Programs that call Run
// (the agent's main, test binaries) call it first thing.
func MaybeHelper() {
	file, ok := os.LookupEnv(helperEnv)
	if !ok {
		return
	}
	if cg := os.Getenv(helperCgroupEnv); cg != "" {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte("0"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "joining the canary cgroup %q: %v\n", cg, err)
			os.Exit(exitSetup)
		}
	}
	err := syscall.Exec(file, []string{file}, []string{})
	if errors.Is(err, syscall.EPERM) {
		os.Exit(exitRefused)
	}
	fmt.Fprintf(os.Stderr, "exec of the drifted file: %v (want EPERM)\n", err)
	os.Exit(exitOther)
}

// Program is the drifted file's content: a static program that exits 42
// (exitDrifted), a status no helper answer shares, so "it ran" is told
// apart from a program that ran itself instead of the helper.
func Program() []byte {
	switch runtime.GOARCH {
	case "amd64":
		// mov edi, 42; mov eax, 60 (exit); syscall
		return tinyELF(62, []byte{0xbf, exitDrifted, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05})
	case "arm64":
		// mov x0, #42; mov x8, #93 (exit); svc #0
		return tinyELF(183, []byte{0x40, 0x05, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4})
	}
	return []byte("#!/bin/sh\nexit 42\n")
}

// tinyELF is a 64-bit little-endian ELF executable of one loadable
// segment holding code, entered at its first byte.
func tinyELF(machine uint16, code []byte) []byte {
	const base, ehsize, phsize = 0x400000, 64, 56
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	entry := uint64(base + ehsize + phsize)
	size := uint64(ehsize + phsize + len(code))
	for _, v := range []any{uint16(2), machine, uint32(1), entry, uint64(ehsize), uint64(0), uint32(0),
		uint16(ehsize), uint16(phsize), uint16(1), uint16(0), uint16(0), uint16(0)} {
		_ = binary.Write(&b, le, v)
	}
	// PT_LOAD, R+X, offset 0 at base, the whole file.
	for _, v := range []any{uint32(1), uint32(5), uint64(0), uint64(base), uint64(base), size, size, uint64(0x1000)} {
		_ = binary.Write(&b, le, v)
	}
	b.Write(code)
	return b.Bytes()
}

// Dir returns a directory for canary files under parent, made if needed.
func Dir(parent string) (string, error) {
	d := filepath.Join(parent, "canary")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("making the canary directory %q: %w", d, err)
	}
	return d, nil
}
