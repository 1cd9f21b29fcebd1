// Command guest runs inside the qemu guest that guest_test.go boots (PID 1's
// child; /init has mounted proc, sysfs, securityfs, devtmpfs, tracefs and
// cgroup2). It proves the BPF-LSM path end to end and prints results as
// "BULWARK ..." lines on the serial console. A copy of this binary is the
// drifted file: run with "ran WHY" it prints "BULWARK ran WHY" and exits,
// so an exec that escapes is visible on the console.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/bpflsm"
	"github.com/bulwark-sec/bulwark/internal/canary"
)

const (
	busybox = "/bin/busybox"
	denied  = "/tmp/denied"
	tool    = "/bin/tool"
	cgDir   = "/sys/fs/cgroup/ctr"
)

func main() {
	canary.MaybeHelper() // the canary's helper is this program again
	if len(os.Args) > 2 && os.Args[1] == "ran" {
		fmt.Println("BULWARK ran", os.Args[2])
		os.Exit(0)
	}
	if err := run(); err != nil {
		fmt.Println("BULWARK FAIL", err)
		os.Exit(1)
	}
	fmt.Println("BULWARK PASS")
}

func run() error {
	n := 2000
	if s := os.Getenv("bulwark_execs"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("parsing bulwark_execs %q", s)
		}
		n = v
	}
	lsms, err := bpflsm.ActiveLSMs()
	if err != nil {
		return err
	}
	fmt.Println("BULWARK lsm", strings.Join(lsms, ","))
	if err := bpflsm.Probe(); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	fmt.Println("BULWARK probe ok")

	for _, c := range [][2]string{{"/guest", denied}, {busybox, tool}} {
		if err := copyFile(c[0], c[1]); err != nil {
			return err
		}
	}
	if err := os.Mkdir(cgDir, 0o755); err != nil {
		return fmt.Errorf("creating cgroup %q: %w", cgDir, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(cgDir, &st); err != nil {
		return fmt.Errorf("reading cgroup id of %q: %w", cgDir, err)
	}
	cg := st.Ino // a cgroup v2 directory's inode number is its cgroup id

	enf, err := bpflsm.Load()
	if err != nil {
		return err
	}
	defer func() { _ = enf.Close() }()
	if err := enf.Watch(cg, bpflsm.ModePrevent, false); err != nil {
		return err
	}
	for _, p := range []string{busybox, tool} {
		id, err := bpflsm.FileIDOf(p)
		if err != nil {
			return err
		}
		if err := enf.Allow(cg, id); err != nil {
			return err
		}
	}
	events := make(chan bpflsm.Event, 4*n+64)
	go func() {
		for {
			ev, err := enf.ReadEvent()
			if err != nil {
				close(events)
				return
			}
			events <- ev
		}
	}()

	// Outside the watched cgroup nothing is decided: the drifted file runs.
	if out, err := exec.Command(denied, "ran", "outside").CombinedOutput(); err != nil || !strings.Contains(string(out), "BULWARK ran outside") {
		return fmt.Errorf("the drifted file outside the watched cgroup: %v %q", err, out)
	}
	fmt.Println("BULWARK outside-cgroup ran")

	if err := os.WriteFile(cgDir+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("joining cgroup %q: %w", cgDir, err)
	}

	// The listed file runs; the drifted one is refused before it runs.
	if out, err := exec.Command(busybox, "echo", "allowed-ran").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "allowed-ran" {
		return fmt.Errorf("the allowed file: %v %q", err, out)
	}
	fmt.Println("BULWARK allowed ran")
	if out, err := exec.Command(denied, "ran", "child").CombinedOutput(); !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("the drifted file in a child: want EPERM, got %v %q", err, out)
	}
	fmt.Println("BULWARK denied child EPERM")

	// memfd_create + exec: the memfd's inode is on the kernel's internal
	// shmem mount, listed nowhere, so it is drift like any other file.
	if err := execMemfd(); err != nil {
		return err
	}
	fmt.Println("BULWARK memfd EPERM")

	// The storm: exec in place; a refused exec returns EPERM, one that is
	// not refused replaces this program and prints "BULWARK ran escape".
	start := time.Now()
	refused := 0
	argv := []string{denied, "ran", "escape"}
	for range n {
		err := syscall.Exec(denied, argv, os.Environ())
		if !errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("storm exec %d: want EPERM, got %v", refused, err)
		}
		refused++
	}
	el := time.Since(start)
	fmt.Printf("BULWARK storm attempts=%d refused=%d escapes=0 seconds=%.2f per_s=%.0f\n", n, refused, el.Seconds(), float64(n)/el.Seconds())

	// A listed file modified after it was listed is drift. The sleep keeps
	// the write off the listing's timestamp tick: this kernel's ctime is
	// coarse (a jiffy) on tmpfs (docs/runtime.md).
	time.Sleep(50 * time.Millisecond)
	if err := appendByte(tool); err != nil {
		return err
	}
	if out, err := exec.Command(tool, "true").CombinedOutput(); !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("the modified listed file: want EPERM, got %v %q", err, out)
	}
	fmt.Println("BULWARK modified EPERM")

	// detect: the drifted file runs and is reported.
	if err := enf.Watch(cg, bpflsm.ModeDetect, false); err != nil {
		return err
	}
	if out, err := exec.Command(denied, "ran", "detect").CombinedOutput(); err != nil || !strings.Contains(string(out), "BULWARK ran detect") {
		return fmt.Errorf("the drifted file in detect: %v %q", err, out)
	}
	fmt.Println("BULWARK detect ran")
	if err := enf.Watch(cg, bpflsm.ModePrevent, false); err != nil {
		return err
	}

	if err := checkEvents(enf, events, cg, n); err != nil {
		return err
	}
	if err := loader(enf, events, cg); err != nil {
		return err
	}
	if err := enf.Close(); err != nil {
		return err
	}
	if err := agentPath(); err != nil { // agentpath.go
		return err
	}
	if err := overlay(); err != nil { // overlay.go
		return err
	}
	return latency(latencyRounds())
}

// checkEvents waits for every event: n+3 refused (the child, the memfd, the
// storm, the modified file), one reported (detect), none lost.
func checkEvents(enf *bpflsm.Enforcer, events <-chan bpflsm.Event, cg uint64, n int) error {
	want := map[string]int{"refused not-listed": n + 2, "refused modified": 1, "reported not-listed": 1}
	got := map[string]int{}
	deadline := time.After(60 * time.Second)
	for total := 0; total < n+4; total++ {
		select {
		case ev := <-events:
			if ev.Cgroup != cg {
				return fmt.Errorf("event for cgroup %d, want %d: %+v", ev.Cgroup, cg, ev)
			}
			got[ev.Verdict.String()+" "+ev.Reason.String()]++
			if total == 0 {
				fmt.Printf("BULWARK first-event pid=%d comm=%s path=%s dev=%#x ino=%d verdict=%s reason=%s\n",
					ev.TGID, ev.Comm, ev.Path, ev.File.Dev, ev.File.Ino, ev.Verdict, ev.Reason)
			}
		case <-deadline:
			return fmt.Errorf("events after 60 s: %v, want %v", got, want)
		}
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("events %v, want %v", got, want)
		}
	}
	s, err := enf.Stats()
	if err != nil {
		return err
	}
	fmt.Printf("BULWARK stats checked=%d allowed=%d refused=%d reported=%d lost=%d\n", s.Checked, s.Allowed, s.Refused, s.Reported, s.EventsLost)
	if s.Refused != uint64(n+3) || s.Reported != 1 || s.EventsLost != 0 {
		return fmt.Errorf("counters %+v, want %d refused, 1 reported, 0 lost", s, n+3)
	}
	return nil
}

// The loader case: the ELF interpreter, libc and a dynamic program (the
// host's /bin/true) are in the initramfs and listed; a copy of the program
// is not.
const (
	ldso     = "/lib64/ld-linux-x86-64.so.2"
	libc     = "/lib/x86_64-linux-gnu/libc.so.6"
	dyn      = "/bin/dyntrue"
	dynDrift = "/tmp/dyndrift"
)

// loader shows that `ld.so FILE` runs an unlisted file when only execs are
// judged, and that with mmap checks it is refused (in prevent) or reported
// (in detect) while listed dynamic programs still run.
func loader(enf *bpflsm.Enforcer, events <-chan bpflsm.Event, cg uint64) error {
	if err := copyFile(dyn, dynDrift); err != nil {
		return err
	}
	for _, p := range []string{ldso, libc, dyn} {
		id, err := bpflsm.FileIDOf(p)
		if err != nil {
			return err
		}
		if err := enf.Allow(cg, id); err != nil {
			return err
		}
	}
	if out, err := exec.Command(ldso, dynDrift).CombinedOutput(); err != nil {
		return fmt.Errorf("the loader trick with exec checks only: want it to run (the known hole), got %v %q", err, out)
	}
	fmt.Println("BULWARK loader exec-only ran")
	if err := enf.Watch(cg, bpflsm.ModePrevent, true); err != nil {
		return err
	}
	for _, argv := range [][]string{{dyn}, {ldso, dyn}} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("listed dynamic program %q with mmap checks: %v %q", argv, err, out)
		}
	}
	fmt.Println("BULWARK dynamic listed ran")
	if err := mapExec(dyn, nil); err != nil {
		return err
	}
	if err := mapExec(dynDrift, syscall.EPERM); err != nil {
		return err
	}
	if err := expectLoaderEvents(events, cg, bpflsm.VerdictRefused, bpflsm.HookMmap, bpflsm.HookMprotect); err != nil {
		return err
	}
	fmt.Println("BULWARK mmap and mprotect EPERM")
	out, err := exec.Command(ldso, dynDrift).CombinedOutput()
	if err == nil {
		return fmt.Errorf("the loader trick with mmap checks in prevent: it ran")
	}
	fmt.Printf("BULWARK loader refused: %v %q\n", err, strings.TrimSpace(string(out)))
	if err := expectLoaderEvents(events, cg, bpflsm.VerdictRefused, bpflsm.HookMmap); err != nil {
		return err
	}
	if err := enf.Watch(cg, bpflsm.ModeDetect, true); err != nil {
		return err
	}
	if out, err := exec.Command(ldso, dynDrift).CombinedOutput(); err != nil {
		return fmt.Errorf("the loader trick with mmap checks in detect: %v %q", err, out)
	}
	if err := expectLoaderEvents(events, cg, bpflsm.VerdictReported, bpflsm.HookMmap); err != nil {
		return err
	}
	fmt.Println("BULWARK loader detect reported")
	return enf.Watch(cg, bpflsm.ModePrevent, false)
}

// expectLoaderEvents reads events until none comes for a second: one or
// more for each of hooks, all on the unlisted copy with verdict v.
func expectLoaderEvents(events <-chan bpflsm.Event, cg uint64, v bpflsm.Verdict, hooks ...bpflsm.Hook) error {
	got := map[bpflsm.Hook]int{}
	for {
		select {
		case ev := <-events:
			if ev.Cgroup != cg || ev.Path != "dyndrift" || ev.Verdict != v || ev.Reason != bpflsm.ReasonNotListed {
				return fmt.Errorf("loader event %+v: want dyndrift, %s, not-listed", ev, v)
			}
			got[ev.Hook]++
		case <-time.After(time.Second):
			for _, h := range hooks {
				if got[h] == 0 {
					return fmt.Errorf("no %s %s event on dyndrift: %v", v, h, got)
				}
			}
			if len(got) != len(hooks) {
				return fmt.Errorf("events by hook %v, want only %v", got, hooks)
			}
			for h, n := range got {
				fmt.Printf("BULWARK loader events %s %s=%d\n", h, v, n)
			}
			return nil
		}
	}
}

// mapExec maps p executable directly (mmap PROT_EXEC), then readable and
// made executable (mprotect): both must fail with want, or succeed if nil.
func mapExec(p string, want error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
	if err == nil {
		_ = unix.Munmap(b)
	}
	if !errors.Is(err, want) && !(want == nil && err == nil) {
		return fmt.Errorf("mmap PROT_EXEC of %q: got %v, want %v", p, err, want)
	}
	b, err = unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("mmap PROT_READ of %q: %w", p, err)
	}
	defer func() { _ = unix.Munmap(b) }()
	err = unix.Mprotect(b, unix.PROT_READ|unix.PROT_EXEC)
	if !errors.Is(err, want) && !(want == nil && err == nil) {
		return fmt.Errorf("mprotect PROT_EXEC of %q: got %v, want %v", p, err, want)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %q: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("copying %q to %q: %w", src, dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %q to %q: %w", src, dst, err)
	}
	return out.Close()
}

// execMemfd copies this program into a memfd and execs it in place through
// /proc/self/fd: EPERM expected; an escape prints "BULWARK ran memfd".
func execMemfd() error {
	fd, err := unix.MemfdCreate("drift", 0)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	in, err := os.Open("/guest")
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := io.Copy(f, in); err != nil {
		return fmt.Errorf("filling the memfd: %w", err)
	}
	p := fmt.Sprintf("/proc/self/fd/%d", fd)
	if err := syscall.Exec(p, []string{p, "ran", "memfd"}, os.Environ()); !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("exec of a memfd: want EPERM, got %v", err)
	}
	return nil
}

func appendByte(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("modifying %q: %w", p, err)
	}
	if _, err := f.Write([]byte{0}); err != nil {
		f.Close()
		return fmt.Errorf("modifying %q: %w", p, err)
	}
	return f.Close()
}
