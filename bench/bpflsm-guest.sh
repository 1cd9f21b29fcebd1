#!/usr/bin/env bash
# bench/bpflsm-guest.sh: added exec latency with the agent's BPF-LSM
# programs (issue 12, acceptance 3b), in the qemu guest TestGuestBPFLSM
# boots (this host's kernel refuses LSM programs). fork+exec+wait of a
# tiny static program and a dynamic one, in blocks alternating no program
# loaded and the three programs attached with the caller's cgroup watched
# in prevent (mmap checks on, files listed), and a third side with the
# programs attached and the cgroup not watched (what every other process of
# the node pays); ROUNDS rounds of 20 execs of
# each per side (CI runs 8). Prints the host's load before and after: the
# guest is emulated (TCG, no KVM), so only the ratio means anything, and
# only on a quiet host. Results: docs/runtime-bpflsm.md.
# Needs root, qemu-system-x86, linux-image-amd64, busybox-static.
# Usage: bash bench/bpflsm-guest.sh [ROUNDS]   (default 40)
# With BULWARK_QEMU_KVM=1 the guest runs under KVM (-enable-kvm -cpu host)
# where /dev/kvm exists: the measurement that settles the 5% goal.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-40}
echo "uptime before: $(uptime)"
BULWARK_REQUIRE_QEMU=1 BULWARK_BPFLSM_LATENCY_ROUNDS="$rounds" BULWARK_BPFLSM_LATENCY_ATTACHED=1 \
	go test ./internal/bpflsm -run '^TestGuestBPFLSM$' -count=1 -v -timeout 30m |
	grep -E 'BULWARK latency|guest ran in|^(ok|FAIL|---)'
echo "uptime after: $(uptime)"
