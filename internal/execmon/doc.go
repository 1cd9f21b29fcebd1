// Package execmon is the agent's exec sensor: tp_btf programs on
// sched_process_exec, sched_process_exit and inet_sock_set_state that
// report every exec, every process exit and every outbound TCP connection
// (the move to SYN_SENT, in the connecting task) of the node on a ring
// buffer, with pid, parent,
// cgroup v2 id, uid, the exec'd file's identity and path, and the argument
// vector (bounded to 255 bytes). It sees; it does not decide (internal/bpflsm
// and internal/fanotify do), with two exceptions. In a container the agent
// watches with kill, an exec of a file on no filesystem or mount the
// agent's fanotify marks hold is killed in the kernel (SIGKILL from
// sched_process_exec, before the new program runs an instruction; kill.go).
// With the gate on, an exec by a container's process (in the gate's cgroup
// scope whatever its pid namespace, or without a scope in a pid namespace
// of its own: bpf/gate.h) whose cgroup the
// agent does not know yet is stopped there (SIGSTOP) until the agent
// continues or kills it (gate.go); the list of processes it holds can be
// pinned in bpffs, so that an agent restarted after a crash judges what
// its predecessor held (pin.go). tp_btf programs need BTF but no tracefs,
// kprobes or BPF trampolines, so they load on kernels that refuse LSM
// programs (this machine's, docs/runtime.md).
//
// The compiled object is committed (exec_bpfel.o, bpf2go); regenerate with
// `go generate ./internal/execmon/` (clang, llvm, libbpf-dev).
package execmon
