package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
)

// learning runs the agent's learning window with BPF-LSM on an overlay
// container (internal/agent/lsm.go): the container is compiled and watched
// in detect while the window is open; a new program runs and is reported;
// its content is hashed as the agent does it, through the reporting
// process's root or, that process gone, the container's
// (bpflsm.ReportedContent); at lock the list with what was learned is
// compiled again and watched in prevent (Enforcer.Relist): the learned
// program runs, another new one is refused, and a listed file whose change
// time moved with its content intact (chmod) still runs.
func learning(ctx context.Context, enf *bpflsm.Enforcer, events <-chan bpflsm.Event) error {
	o, err := mountOverlay("/lrn", true)
	if err != nil {
		return err
	}
	list, err := overlayList()
	if err != nil {
		return err
	}
	cgPath := "/sys/fs/cgroup/lrn"
	cg, err := makeCgroup(cgPath)
	if err != nil {
		return err
	}
	// The container's init: the agent knows its pid and reaches the
	// container's root through /proc/PID/root.
	init := exec.Command("/bin/busybox", "sleep", "600")
	init.SysProcAttr = &syscall.SysProcAttr{Chroot: o.merged}
	init.Dir = "/"
	if err := init.Start(); err != nil {
		return fmt.Errorf("starting the container's init: %w", err)
	}
	defer func() { _ = init.Process.Kill(); _ = init.Wait() }()
	initRoot := "/proc/" + strconv.Itoa(init.Process.Pid) + "/root" // as the agent compiles a container

	cache := allowlist.NewDigestCache(64)
	comp, err := enf.Compile(ctx, cg, initRoot, list, cache, true)
	if err != nil {
		return err
	}
	fmt.Printf("BULWARK learn compiled through %s listed=%d\n", initRoot, len(comp.Files))
	if len(comp.Files) != 5 {
		return fmt.Errorf("learning: compiled %d files through the container's root, want 5", len(comp.Files))
	}
	if err := enf.Watch(cg, bpflsm.ModeDetect, true); err != nil { // the window
		return err
	}
	if err := joinCgroup(cgPath); err != nil {
		return err
	}
	defer func() { _ = joinCgroup(cgDir) }()
	for i, p := range []string{"/tmp/learned", "/tmp/later"} {
		if err := copyFile(busybox, o.merged+p); err != nil {
			return err
		}
		for range i + 1 { // contents of their own
			if err := appendByte(o.merged + p); err != nil {
				return err
			}
		}
	}
	if out, err := runIn(o.merged, "/tmp/learned", "true"); err != nil {
		return fmt.Errorf("learning: a new program in the window: %v %q", err, out)
	}
	// The exec is reported, and so is the kernel's mapping of the new
	// program (mmap checks): the agent learns from the exec's report, the
	// only one with a path.
	var ev bpflsm.Event
	for _, e := range drainEvents(events, cg) {
		switch {
		case e.Verdict == bpflsm.VerdictReported && e.Hook == bpflsm.HookExec && e.Path == "/tmp/learned":
			ev = e
		case e.Verdict == bpflsm.VerdictReported && e.Hook == bpflsm.HookMmap && e.Path == "learned":
		default:
			return fmt.Errorf("learning: event %+v in the window, want /tmp/learned reported", e)
		}
	}
	if ev.Path == "" {
		return errors.New("learning: no exec report of /tmp/learned in the window")
	}
	// As the agent's learnLSM: the process's root first (it has exited),
	// then the container's.
	var learned allowlist.Digest
	procRoot := "/proc/" + strconv.Itoa(int(ev.TGID)) + "/root"
	if _, err := bpflsm.ReportedContent(procRoot, ev, cache); err == nil {
		return fmt.Errorf("learning: pid %d still has a root after it exited", ev.TGID)
	}
	if learned, err = bpflsm.ReportedContent(initRoot, ev, cache); err != nil {
		return fmt.Errorf("learning: hashing the reported program through the container's root: %w", err)
	}
	fmt.Println("BULWARK learn window ran and reported /tmp/learned, hashed through the container's root")
	// A report whose file was replaced since is not learned.
	stale := ev
	stale.File.CtimeNsec++
	if _, err := bpflsm.ReportedContent(initRoot, stale, cache); !errors.Is(err, bpflsm.ErrNotReported) {
		return fmt.Errorf("learning: a report of another identity: %v, want ErrNotReported", err)
	}

	// Before the lock: a listed file's change time moves, its content
	// does not (copied up by chmod).
	time.Sleep(50 * time.Millisecond) // off the listing's ctime tick
	if err := os.Chmod(o.merged+"/bin/tool", 0o755); err != nil {
		return err
	}
	locked := list.With(map[allowlist.Digest]string{learned: "/tmp/learned"})
	comp2, err := enf.Relist(ctx, cg, initRoot, locked, cache, true, bpflsm.ModePrevent, comp)
	if err != nil {
		return fmt.Errorf("learning: relisting at lock: %w", err)
	}
	fmt.Printf("BULWARK learn relisted listed=%d before=%d\n", len(comp2.Files), len(comp.Files))
	for _, argv := range [][]string{{"/tmp/learned", "true"}, {"/bin/busybox", "true"}, {"/bin/tool", "true"}, {dyn}} {
		if out, err := runIn(o.merged, argv...); err != nil {
			return fmt.Errorf("learning: after the lock %q: %v %q", argv, err, out)
		}
	}
	fmt.Println("BULWARK learn locked: learned, listed and chmod-ed programs ran")
	if out, err := runIn(o.merged, "/tmp/later", "true"); !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("learning: a new program after the lock: want EPERM, got %v %q", err, out)
	}
	if ev, err := nextEvent(events, cg); err != nil || ev.Verdict != bpflsm.VerdictRefused || ev.Path != "/tmp/later" {
		return fmt.Errorf("learning: after the lock: event %+v (%v), want /tmp/later refused", ev, err)
	}
	fmt.Println("BULWARK learn locked: a new program EPERM")
	if err := enf.Unwatch(cg); err != nil {
		return err
	}
	return enf.Release(cg, comp2)
}

// drainEvents returns the reports of cgroup cg until none comes for a
// second.
func drainEvents(events <-chan bpflsm.Event, cg uint64) []bpflsm.Event {
	var out []bpflsm.Event
	for {
		select {
		case ev := <-events:
			if ev.Cgroup == cg {
				out = append(out, ev)
			}
		case <-time.After(time.Second):
			return out
		}
	}
}
