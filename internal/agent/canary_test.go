package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/kerneltest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("BULWARK_REQUIRE_CONTAINERD") == "1" {
			t.Fatal("needs root (fanotify, mounts)")
		}
		kerneltest.Skip(t, "needs root (fanotify, mounts)")
	}
}

// TestMechanismBPFLSMRefusesToStart: --mechanism bpf-lsm where the kernel
// refuses LSM programs (this host: EPERM at load) refuses to start in
// prevent, saying why; with AllowDegrade the agent falls back to fanotify
// and says so, and the state carries the reason.
func TestMechanismBPFLSMRefusesToStart(t *testing.T) {
	needRoot(t)
	if err := startBPFLSMProbe(); err == nil {
		t.Skip("this kernel runs BPF-LSM: the refusal cannot be shown here (the guest test covers the working path)")
	}
	_, err := New(Config{Mode: ModePrevent, Mechanism: MechanismBPFLSM})
	var ne *NoEnforcementError
	if !errors.As(err, &ne) || !strings.Contains(err.Error(), "bpf-lsm unavailable at ") {
		t.Fatalf("New with bpf-lsm on a kernel without it: %v, want a NoEnforcementError naming the stage", err)
	}
	var logs bytes.Buffer
	a, err := New(Config{Mode: ModePrevent, Mechanism: MechanismBPFLSM, AllowDegrade: true, Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New with AllowDegrade: %v", err)
	}
	defer a.fan.Close()
	if a.mechanismName() != "fanotify" || !strings.Contains(logs.String(), "DEGRADED") {
		t.Fatalf("degraded agent: mechanism %q, logs %s", a.mechanismName(), logs.String())
	}
	// Auto on the same kernel picks fanotify without complaint.
	b, err := New(Config{Mode: ModePrevent})
	if err != nil || b.mechanismName() != "fanotify" || b.degraded != "" {
		t.Fatalf("auto: %v, mechanism %q, degraded %q", err, b.mechanismName(), b.degraded)
	}
	b.fan.Close()
}

func startBPFLSMProbe() error {
	e, err := startBPFLSM()
	if err == nil {
		e.Close()
	}
	return err
}

// serveOnly runs the agent's fanotify listener without containerd.
func serveOnly(t *testing.T, a *Agent) func() {
	var g errgroup.Group
	ctx, cancel := context.WithCancel(context.Background())
	g.Go(func() error { return a.serve(ctx) })
	return func() {
		cancel()
		a.fan.Close()
		_ = g.Wait()
	}
}

// TestCanaryFanotify: the canary's drifted exec in its throwaway tmpfs is
// refused by the real listener (enforcing (fanotify)); in detect the state
// is detecting-only; when the listener is lost the canary's exec runs and
// the state turns broken with the reason, in the heartbeat and metrics.
func TestCanaryFanotify(t *testing.T) {
	needRoot(t)
	var logs bytes.Buffer
	a, err := New(Config{Mode: ModePrevent, Mechanism: MechanismFanotify, CanaryDir: t.TempDir(), Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := serveOnly(t, a)
	defer stop()
	if st, _ := a.Enforcement(); st != agentproto.StateBroken {
		t.Fatalf("before any canary: %q, want broken", st)
	}
	ctx := context.Background()
	cs, err := a.startCanary(ctx)
	if err != nil {
		t.Fatalf("starting the canary: %v", err)
	}
	defer cs.cleanup()
	if st, why := a.Enforcement(); st != agentproto.StateEnforcingFanotify {
		t.Fatalf("after a refused canary: %q (%s)", st, why)
	}
	for range 3 {
		if err := a.runCanary(ctx, cs); err != nil {
			t.Fatalf("canary: %v", err)
		}
	}
	if s := a.Stats(); s.Execs != 4 || s.Refused != 0 {
		t.Fatalf("the listener decided %d execs (%d refused as drift), want the 4 canaries, none counted as drift", s.Execs, s.Refused)
	}
	a.cfg.Mode = ModeDetect
	if st, why := a.Enforcement(); st != agentproto.StateDetectingOnly || why != "mode detect" {
		t.Fatalf("detect: %q (%s)", st, why)
	}
	a.cfg.Mode = ModePrevent

	// The listener is lost: the kernel lets the exec run, and the canary
	// says so.
	stop()
	err = a.runCanary(ctx, cs)
	if err == nil || !strings.Contains(err.Error(), "ran") {
		t.Fatalf("canary with the listener gone: %v, want it ran", err)
	}
	st, why := a.Enforcement()
	if st != agentproto.StateBroken || !strings.Contains(why, "drifted file ran") {
		t.Fatalf("state with the listener gone: %q (%s), want broken", st, why)
	}
	hb := a.Heartbeat(nil)
	if hb.State != agentproto.StateBroken || hb.Validate() != nil && hb.Node != "" {
		t.Fatalf("heartbeat: %+v", hb)
	}
	var m bytes.Buffer
	writeMetrics(&m, a.status("n", "", nil, nil))
	for _, want := range []string{`bulwark_agent_enforcement_state{state="broken"} 1`, "bulwark_agent_canary_ok 0", "bulwark_agent_canary_failures_total 1", "bulwark_agent_canary_runs_total 5"} {
		if !strings.Contains(m.String(), want) {
			t.Fatalf("metrics lack %q:\n%s", want, m.String())
		}
	}
	if !strings.Contains(logs.String(), "CANARY FAILED") {
		t.Fatalf("the failure was not logged loudly: %s", logs.String())
	}
}

// TestCanaryRefusesStart: in prevent a canary that cannot run (the
// listener is already gone) stops the agent from starting; with
// AllowDegrade it starts, broken.
func TestCanaryRefusesStart(t *testing.T) {
	needRoot(t)
	for _, degrade := range []bool{false, true} {
		a, err := New(Config{Mode: ModePrevent, Mechanism: MechanismFanotify, CanaryDir: t.TempDir(), AllowDegrade: degrade})
		if err != nil {
			t.Fatal(err)
		}
		a.fan.Close()
		_, err = a.startCanary(context.Background())
		var ne *NoEnforcementError
		if degrade {
			if err != nil {
				t.Fatalf("AllowDegrade: %v", err)
			}
			if st, _ := a.Enforcement(); st != agentproto.StateBroken {
				t.Fatalf("AllowDegrade: state %q, want broken", st)
			}
		} else if !errors.As(err, &ne) {
			t.Fatalf("a dead listener: %v, want NoEnforcementError", err)
		}
	}
}
