package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
	"github.com/bulwark-sec/bulwark/internal/canary"
	"github.com/bulwark-sec/bulwark/internal/sbom"
)

const (
	agentCg   = "/sys/fs/cgroup/agent"
	canaryCg  = "/sys/fs/cgroup/canary"
	agentTool = "/bin/agenttool" // a copy of busybox: listed by its content
	agentDrft = "/tmp/agentdrift"
	agentDyn  = "/tmp/agentdyn" // the dynamic program with a byte appended: not the image's content
)

// agentPath runs the agent's own BPF-LSM decision path: the allowlist
// built from a file table as the agent builds it from an inventory, compiled
// into a fresh cgroup's maps by Enforcer.Compile walking the root (the
// container's root, for the agent), watched in prevent with mmap checks
// (the list knows its libraries). Listed programs run, static and dynamic;
// a drifted copy, a memfd, the loader trick and a modified listed file are
// refused; the canary is refused in a watched cgroup and runs in an
// unwatched one.
func agentPath() error {
	ctx := context.Background()
	enf, err := bpflsm.Start()
	if err != nil {
		return err
	}
	defer func() { _ = enf.Close() }()
	for _, c := range [][2]string{{busybox, agentTool}, {"/guest", agentDrft}, {dyn, agentDyn}} {
		if err := copyFile(c[0], c[1]); err != nil {
			return err
		}
	}
	// A copy of an image file is the image's content (allowed by content,
	// listed by Compile); the loader case needs content of its own.
	if err := appendByte(agentDyn); err != nil {
		return err
	}
	var files []sbom.File
	for _, p := range []string{busybox, dyn, ldso, libc} {
		f, err := tableEntry(p)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	list, err := allowlist.FromInventory("sha256:guest", files, allowlist.Config{Entrypoint: []string{busybox}})
	if err != nil {
		return err
	}
	cg, err := makeCgroup(agentCg)
	if err != nil {
		return err
	}
	start := time.Now()
	comp, err := enf.Compile(ctx, cg, "/", list, allowlist.NewDigestCache(1024), list.Libraries)
	if err != nil {
		return err
	}
	fmt.Printf("BULWARK agent compiled listed=%d visited=%d not-image=%d libraries=%v in %s\n",
		len(comp.Files), comp.Visited, comp.Refused, list.Libraries, time.Since(start).Round(time.Millisecond))
	if len(comp.Files) < 5 || !list.Libraries { // busybox, the tool copy, ld.so, libc, dyntrue (and its plain copy)
		return fmt.Errorf("compiled %d files (libraries %v), want busybox, its copy, ld.so, libc and the dynamic program", len(comp.Files), list.Libraries)
	}
	if err := enf.Watch(cg, bpflsm.ModePrevent, list.Libraries); err != nil {
		return err
	}
	if err := joinCgroup(agentCg); err != nil {
		return err
	}
	for _, argv := range [][]string{{busybox, "true"}, {agentTool, "true"}, {dyn}, {ldso, dyn}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		if argv[0] == agentTool {
			cmd.Args[0] = "busybox" // busybox picks its applet by argv[0]
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("agent path: listed %q: %v %q", argv, err, out)
		}
	}
	fmt.Println("BULWARK agent listed ran")
	if out, err := exec.Command(agentDrft, "ran", "agent-drift").CombinedOutput(); !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("agent path: a drifted copy: want EPERM, got %v %q", err, out)
	}
	fmt.Println("BULWARK agent drifted EPERM")
	if err := execMemfd(); err != nil {
		return fmt.Errorf("agent path: %w", err)
	}
	fmt.Println("BULWARK agent memfd EPERM")
	if out, err := exec.Command(ldso, agentDyn).CombinedOutput(); err == nil {
		return fmt.Errorf("agent path: the loader trick ran: %q", out)
	}
	fmt.Println("BULWARK agent loader refused")
	time.Sleep(50 * time.Millisecond) // off the listing's ctime tick (docs/runtime.md)
	if err := appendByte(agentTool); err != nil {
		return err
	}
	if out, err := exec.Command(agentTool, "true").CombinedOutput(); !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("agent path: a modified listed file: want EPERM, got %v %q", err, out)
	}
	fmt.Println("BULWARK agent modified EPERM")

	// The canary, as the agent runs it: from outside any watched cgroup,
	// its helper joins the canary's cgroup and execs a drifted file.
	if err := joinCgroup("/sys/fs/cgroup"); err != nil {
		return err
	}
	ccg, err := makeCgroup(canaryCg)
	if err != nil {
		return err
	}
	var fe *canary.FailedError
	if err := canary.Run(ctx, canary.Options{Dir: "/tmp", Cgroup: canaryCg}); !errors.As(err, &fe) || !fe.Ran {
		return fmt.Errorf("agent path: the canary in an unwatched cgroup: %v, want it to run", err)
	}
	fmt.Println("BULWARK agent canary unwatched ran")
	if err := enf.Watch(ccg, bpflsm.ModePrevent, false); err != nil {
		return err
	}
	if err := canary.Run(ctx, canary.Options{Dir: "/tmp", Cgroup: canaryCg}); err != nil {
		return fmt.Errorf("agent path: the canary in a watched cgroup: %w", err)
	}
	fmt.Println("BULWARK agent canary refused")
	if err := enf.Release(cg, comp); err != nil {
		return err
	}
	return joinCgroup(cgDir) // where latency expects this process
}

// tableEntry is p's file table entry as an inventory holds it.
func tableEntry(p string) (sbom.File, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return sbom.File{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return sbom.File{}, err
	}
	sum := sha256.Sum256(b)
	return sbom.File{Path: p, Type: "file", Mode: fmt.Sprintf("%04o", st.Mode().Perm()), Size: st.Size(),
		Digest: "sha256:" + hex.EncodeToString(sum[:])}, nil
}

func makeCgroup(dir string) (uint64, error) {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return 0, fmt.Errorf("creating cgroup %q: %w", dir, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("reading cgroup id of %q: %w", dir, err)
	}
	return st.Ino, nil
}

func joinCgroup(dir string) error {
	if err := os.WriteFile(strings.TrimSuffix(dir, "/")+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("joining cgroup %q: %w", dir, err)
	}
	return nil
}
