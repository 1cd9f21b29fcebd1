package agent

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/bpflsm"
	"github.com/bulwark-sec/bulwark/internal/fanotify"
)

// Mechanism is how the agent enforces: BPF-LSM (the kernel decides from
// maps) or fanotify (the kernel holds the exec, the agent decides).
type Mechanism string

// The mechanisms.
const (
	// MechanismAuto uses BPF-LSM where the kernel allows it, else fanotify.
	MechanismAuto Mechanism = "auto"
	// MechanismBPFLSM is BPF-LSM or nothing.
	MechanismBPFLSM Mechanism = "bpf-lsm"
	// MechanismFanotify is fanotify or nothing.
	MechanismFanotify Mechanism = "fanotify"
)

// ParseMechanism reads a mechanism name strictly.
func ParseMechanism(s string) (Mechanism, error) {
	switch m := Mechanism(s); m {
	case MechanismAuto, MechanismBPFLSM, MechanismFanotify:
		return m, nil
	}
	return "", fmt.Errorf("parsing mechanism %q: want auto, bpf-lsm or fanotify", s)
}

// startBPFLSM is bpflsm.Start (a variable for tests).
var startBPFLSM = bpflsm.Start

// openMechanism opens what cfg asks for. With cfg.AllowDegrade a missing
// mechanism is not an error: the agent falls back to the other one, or to
// none, and a.degraded says why. Without it, a *NoEnforcementError.
func (a *Agent) openMechanism() error {
	m := a.cfg.Mechanism
	var reasons []string
	if m == MechanismAuto || m == MechanismBPFLSM {
		enf, err := startBPFLSM()
		if err == nil {
			a.lsm = newLSM(enf)
			a.log.Info("enforcing with bpf-lsm: the kernel decides every exec from per-container maps")
			return nil
		}
		reasons = append(reasons, err.Error())
		if m == MechanismAuto {
			a.log.Info("bpf-lsm unavailable; trying fanotify", "reason", err.Error())
		}
	}
	if m == MechanismBPFLSM && !a.cfg.AllowDegrade {
		return &NoEnforcementError{Err: errors.New(strings.Join(reasons, "; "))}
	}
	fan, err := fanotify.New()
	if err == nil {
		a.fan = fan
		if m == MechanismBPFLSM {
			a.degraded = "bpf-lsm asked for but unavailable (" + reasons[0] + "): enforcing with fanotify"
			a.log.Error("DEGRADED: " + a.degraded)
		}
		return nil
	}
	reasons = append(reasons, "fanotify: "+err.Error())
	why := strings.Join(reasons, "; ")
	if !a.cfg.AllowDegrade {
		return &NoEnforcementError{Err: errors.New(why)}
	}
	a.degraded = "no exec enforcement mechanism: " + why
	a.log.Error("DEGRADED: running without exec enforcement or detection (--allow-degrade)", "reason", why)
	return nil
}

// mechanismName is the mechanism in use, for the state.
func (a *Agent) mechanismName() string {
	switch {
	case a.lsm != nil:
		return "bpf-lsm"
	case a.fan != nil:
		return "fanotify"
	}
	return ""
}
