package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/bpflsm"
	"github.com/bulwark-sec/bulwark/internal/canary"
)

// canaryID names the throwaway container the canary runs in.
const canaryID = "bulwark-canary"

// canaryState is the last canary's answer.
type canaryState struct {
	mu       sync.Mutex
	ran      bool // a canary has run
	err      error
	last     time.Time
	runs     int64
	failures int64
}

// CanaryStatus is the canary's answer as the status file shows it.
type CanaryStatus struct {
	Last     time.Time `json:"last,omitzero"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Runs     int64     `json:"runs"`
	Failures int64     `json:"failures"`
}

func (s *canaryState) status() CanaryStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := CanaryStatus{Last: s.last, OK: s.ran && s.err == nil, Runs: s.runs, Failures: s.failures}
	if s.err != nil {
		st.Error = s.err.Error()
	}
	return st
}

// canarySetup is the throwaway place the canary execs in and how to undo it.
type canarySetup struct {
	opts    canary.Options
	cleanup func()
}

// setupCanary makes the throwaway container the canary runs in, watched in
// prevent with an empty list whatever the agent's mode: with fanotify a
// tmpfs mounted under dir and marked; with BPF-LSM a cgroup of its own.
func (a *Agent) setupCanary(dir string) (*canarySetup, error) {
	d, err := canary.Dir(dir)
	if err != nil {
		return nil, err
	}
	empty, _ := allowlist.FromInventory(canaryID, nil, allowlist.Config{})
	c := &container{id: canaryID, namespace: "bulwark", canary: true, mode: ModePrevent, compiled: allowlist.Compile(empty, 16)}
	switch {
	case a.fan != nil:
		_ = unix.Unmount(d, unix.MNT_DETACH) // a mount an agent that died left behind
		if err := unix.Mount("bulwark-canary", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0700"); err != nil {
			return nil, fmt.Errorf("mounting the canary's tmpfs on %q: %w", d, err)
		}
		umount := func() { _ = unix.Unmount(d, unix.MNT_DETACH) }
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			umount()
			return nil, fmt.Errorf("reading the canary's tmpfs %q: %w", d, err)
		}
		if err := a.fan.MarkExec(d); err != nil {
			umount()
			return nil, err
		}
		c.dev = st.Dev
		a.mu.Lock()
		a.byDev[c.dev] = c
		a.mu.Unlock()
		return &canarySetup{opts: canary.Options{Dir: d}, cleanup: func() {
			a.mu.Lock()
			delete(a.byDev, c.dev)
			a.mu.Unlock()
			umount()
		}}, nil
	case a.lsm != nil:
		mnt, err := cgroup2Mount()
		if err != nil {
			return nil, err
		}
		cgDir := filepath.Join(mnt, canaryID+"-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(cgDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("making the canary's cgroup %q: %w", cgDir, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(cgDir, &st); err != nil {
			return nil, fmt.Errorf("reading the canary's cgroup %q: %w", cgDir, err)
		}
		if err := a.lsm.enf.Watch(st.Ino, bpflsm.ModePrevent, false); err != nil {
			os.Remove(cgDir)
			return nil, err
		}
		c.cgroup = st.Ino
		a.mu.Lock()
		a.byCgroup[c.cgroup] = c
		a.mu.Unlock()
		return &canarySetup{opts: canary.Options{Dir: d, Cgroup: cgDir}, cleanup: func() {
			_ = a.lsm.enf.Unwatch(c.cgroup)
			a.mu.Lock()
			delete(a.byCgroup, c.cgroup)
			a.mu.Unlock()
			os.Remove(cgDir)
		}}, nil
	}
	return nil, errors.New("no mechanism to run a canary with")
}

// runCanary execs a drifted file in the throwaway container once and
// records the answer. A change of answer is logged (a failure loudly).
func (a *Agent) runCanary(ctx context.Context, cs *canarySetup) error {
	err := canary.Run(ctx, cs.opts)
	if ctx.Err() != nil {
		return err // stopping: not a verdict
	}
	s := &a.canary
	s.mu.Lock()
	was := s.ran && s.err == nil
	s.ran, s.err, s.last = true, err, time.Now().UTC()
	s.runs++
	if err != nil {
		s.failures++
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		a.log.Error("CANARY FAILED: exec enforcement is not working", "mechanism", a.mechanismName(), "error", err.Error())
	case !was:
		a.log.Info("canary refused: exec enforcement proven", "mechanism", a.mechanismName())
	}
	return err
}

// canaryLoop runs the canary every cfg.CanaryEvery until ctx ends.
func (a *Agent) canaryLoop(ctx context.Context, cs *canarySetup) error {
	t := time.NewTicker(a.cfg.CanaryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = a.runCanary(ctx, cs)
		}
	}
}

// startCanary sets up the canary and runs it once: in detect or prevent a
// canary that cannot be set up or is not refused stops the agent
// (*NoEnforcementError) unless cfg.AllowDegrade.
func (a *Agent) startCanary(ctx context.Context) (*canarySetup, error) {
	if a.strictest() == ModeOff || (a.fan == nil && a.lsm == nil) {
		return nil, nil
	}
	cs, err := a.setupCanary(a.cfg.CanaryDir)
	if err == nil {
		err = a.runCanary(ctx, cs)
	} else {
		a.canary.mu.Lock()
		a.canary.ran, a.canary.err, a.canary.last = true, fmt.Errorf("setting up the canary: %w", err), time.Now().UTC()
		a.canary.mu.Unlock()
		a.log.Error("CANARY FAILED: cannot set up the canary", "error", err.Error())
	}
	if err != nil && !a.cfg.AllowDegrade {
		if cs != nil {
			cs.cleanup()
		}
		return nil, &NoEnforcementError{Err: err}
	}
	if err != nil {
		a.log.Error("DEGRADED: running although the canary was not refused (--allow-degrade)")
	}
	return cs, nil
}
