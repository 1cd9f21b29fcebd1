package agent

import (
	"log/slog"

	"github.com/bulwark-sec/bulwark/internal/bpflsm"
)

// probeBPFLSM says at start whether this kernel would enforce with BPF-LSM
// (bpf an active LSM, the program loads and attaches). The agent enforces
// with fanotify either way for now; the probe's answer is logged so a node
// that cannot use BPF-LSM says why (on a kernel that forbids BPF
// trampolines: EPERM at load).
func probeBPFLSM(log *slog.Logger, m Mode) {
	if m == ModeOff {
		return
	}
	if err := bpflsm.Probe(); err != nil {
		log.Info("bpf-lsm unavailable; enforcing with fanotify", "reason", err.Error())
		return
	}
	log.Info("bpf-lsm available; enforcing with fanotify (the bpf-lsm path is not wired into the agent yet)")
}
