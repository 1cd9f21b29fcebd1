// Package bpflsm is the runtime agent's in-kernel enforcement: BPF-LSM
// programs on bprm_check_security (and mmap_file, file_mprotect) that
// decide every exec of a watched container from maps the agent fills,
// without a round trip to user space.
//
// The maps: containers (cgroup v2 id -> mode, detect or prevent, and
// whether mappings are judged) and allowed ((cgroup id, device, inode) ->
// the inode's change time). An exec by a process of a watched cgroup runs
// when the file's identity is listed for that cgroup and its change time
// has not moved since it was listed (a write, chmod or chown moves it, so a
// modified image file is drift); any other exec is drift, refused with
// EPERM in prevent (before the new program runs; the caller keeps its old
// one) and let through in detect. A cgroup watched with mmap checks has
// every executable file mapping (mmap_file, file_mprotect) judged the same
// way, which refuses the loader trick (ld.so FILE); its list must then hold
// the shared libraries and ELF interpreter too. Drift is reported on a ring
// buffer (Event); per-CPU counters (Stats) count every decision so a caller
// can prove that nothing escaped.
//
// The object is compiled from bpf/lsm.c with bpf2go and committed
// (lsm_bpfel.go, lsm_bpfel.o), so a build needs no clang. Every kernel field
// it reads is a CO-RE relocation against the running kernel's BTF
// (bpf/kernel.h declares only those fields). To regenerate, with clang,
// llvm and libbpf-dev installed: go generate ./internal/bpflsm/
//
// Probe says whether this kernel runs LSM programs: bpf must be an active
// LSM (/sys/kernel/security/lsm; securityfs is mounted if it is not) and the
// program must load and attach. Kernels that refuse (EPERM at load, as a
// sandbox that forbids BPF trampolines does) get a clear *UnavailableError
// and the agent uses fanotify instead.
//
// The guest test (guest_test.go) proves the path for real: it boots
// Debian's kernel in qemu with lsm=...,bpf and runs testdata/guest there.
package bpflsm
