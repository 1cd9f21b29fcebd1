// SPDX-License-Identifier: GPL-2.0
/* The gate's guard: a SIGCONT to a process the gate holds (held_pids,
 * filled by bpf/exec.c, shared at load) by a container's process kills
 * the process. In a pod sharing one pid namespace a sibling could
 * otherwise run a held entrypoint before its verdict; a hostPID container
 * reaches every process of the node. A sender is a container's when it
 * is in a pid namespace of its own, or in the gate's cgroup scope (gate.h,
 * the map shared with exec.c too) whatever its pid namespace, and not in
 * the agent's own cgroup. The host's senders are let be. The SIGCONT has woken it when signal_generate runs; the SIGKILL
 * is sent from here (queued through irq_work: the signal lock is held), in
 * practice before the process is back in user space. bpf_send_signal_task
 * is Linux 6.13: this object is loaded apart from exec.c, and a kernel
 * that refuses it only loses the guard. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define SIGKILL 9
#define SIGCONT 18
enum pid_type {
	PIDTYPE_PID,
	PIDTYPE_TGID,
	PIDTYPE_PGID,
	PIDTYPE_SID,
	PIDTYPE_MAX,
};

#include "held_pids.h"
#include "gate.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cont_killed SEC(".maps");

extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type, __u64 value) __ksym;

/* guard kills t, a task woken or sent SIGCONT, when the gate holds it and
 * the current task is a container's (gate.h). A sender not a container's
 * is the host's: the agent (in its own cgroup; it forgets what it
 * continues first), the kernel on behalf of an exiting host process, a
 * second agent during a rolling update outside a scope (in the scope,
 * only with the held list pinned and so shared: it forgets the process
 * for both before it continues it). The entry goes with the kill: the
 * SIGCONT that woke it (sched_waking, first) is not counted again at its
 * signal_generate. */
static __always_inline void guard(struct task_struct *t)
{
	__u32 tgid = BPF_CORE_READ(t, tgid);
	if (!bpf_map_lookup_elem(&held_pids, &tgid))
		return;
	struct task_struct *cur = bpf_get_current_task_btf();
	__u64 cg = bpf_get_current_cgroup_id();
	if (cg == gate_get(GATE_SELF) || (BPF_CORE_READ(cur, thread_pid, level) == 0 && !containers(cur, cg)))
		return;
	if (bpf_send_signal_task(t, SIGKILL, PIDTYPE_TGID, 0) == 0) {
		bpf_map_delete_elem(&held_pids, &tgid);
		__u32 k = 0;
		__u64 *v = bpf_map_lookup_elem(&cont_killed, &k);
		if (v)
			*v += 1;
	}
}

SEC("tp_btf/signal_generate")
int bulwark_gate_cont(unsigned long long *ctx)
{
	int sig = (int)ctx[0];
	struct task_struct *t = (void *)ctx[2];
	if (sig == SIGCONT && t)
		guard(t);
	return 0;
}

/* A held task woken: it is stopped (SIGSTOP at its exec) and nothing
 * wakes a stopped task but SIGCONT, SIGKILL or a tracer: PTRACE_ATTACH or
 * PTRACE_SEIZE wake it into a traced stop, and PTRACE_CONT then resumes
 * it with no SIGCONT at all (a tracer of the same uid and capabilities,
 * as another container's root is, needs no CAP_SYS_PTRACE), which the
 * SIGCONT guard above never saw (TestGateGuardPtrace). sched_waking runs
 * in the waker's context before the task runs; only stopped or traced
 * tasks are looked up (the hot path: every wakeup of the node), and one
 * being killed (a fatal signal on its way) is let die. */
#define __TASK_STOPPED 0x4
#define __TASK_TRACED 0x8
#define SIGNAL_GROUP_EXIT 0x4

SEC("tp_btf/sched_waking")
int bulwark_gate_wake(unsigned long long *ctx)
{
	struct task_struct *t = (void *)ctx[0];
	if (!(BPF_CORE_READ(t, __state) & (__TASK_STOPPED | __TASK_TRACED)))
		return 0;
	if (BPF_CORE_READ(t, signal, flags) & SIGNAL_GROUP_EXIT)
		return 0;
	guard(t);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
