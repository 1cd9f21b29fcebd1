package bpflsm

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// LSMListPath is where the kernel lists its active LSMs.
const LSMListPath = "/sys/kernel/security/lsm"

// UnavailableError says why BPF-LSM cannot enforce on this kernel, and at
// which stage the attempt stopped: "lsm-list" (securityfs unreadable),
// "not-active" (bpf is not in the LSM list: boot with lsm=...,bpf),
// "memlock", "load" or "attach".
type UnavailableError struct {
	Stage string
	Err   error
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("bpf-lsm unavailable at %s: %v", e.Stage, e.Err)
	if e.Stage == "load" && errors.Is(e.Err, unix.EPERM) {
		msg += " (the kernel refuses LSM programs: EPERM before the verifier, as kernels that forbid BPF trampolines do)"
	}
	return msg
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// ActiveLSMs reads the kernel's list of active LSMs, mounting securityfs at
// /sys/kernel/security first when it is not mounted.
func ActiveLSMs() ([]string, error) {
	b, err := os.ReadFile(LSMListPath)
	if errors.Is(err, os.ErrNotExist) {
		if merr := unix.Mount("securityfs", "/sys/kernel/security", "securityfs", 0, ""); merr != nil && !errors.Is(merr, unix.EBUSY) {
			return nil, fmt.Errorf("mounting securityfs to read %q: %w", LSMListPath, merr)
		}
		b, err = os.ReadFile(LSMListPath)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", LSMListPath, err)
	}
	return parseLSMList(string(b)), nil
}

func parseLSMList(s string) []string {
	var out []string
	for _, n := range strings.Split(strings.TrimSpace(s), ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Probe checks that this kernel enforces with BPF-LSM: bpf is an active
// LSM, and the program loads and attaches (it is detached again before
// Probe returns). nil means it works; otherwise an *UnavailableError.
func Probe() error {
	e, err := Start()
	if err != nil {
		return err
	}
	if err := e.Close(); err != nil {
		return fmt.Errorf("detaching the probe's program: %w", err)
	}
	return nil
}

// Start checks that bpf is an active LSM, then loads and attaches the
// programs (Load) and returns them, for the agent to enforce with. A
// kernel that cannot gets an *UnavailableError.
func Start() (*Enforcer, error) {
	lsms, err := ActiveLSMs()
	if err != nil {
		return nil, &UnavailableError{Stage: "lsm-list", Err: err}
	}
	found := false
	for _, n := range lsms {
		found = found || n == "bpf"
	}
	if !found {
		return nil, &UnavailableError{Stage: "not-active", Err: fmt.Errorf("bpf is not among the active LSMs %q (boot with lsm=...,bpf)", strings.Join(lsms, ","))}
	}
	return Load()
}
