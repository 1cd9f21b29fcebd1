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

SEC("tp_btf/signal_generate")
int bulwark_gate_cont(unsigned long long *ctx)
{
	int sig = (int)ctx[0];
	struct task_struct *t = (void *)ctx[2];
	if (sig != SIGCONT || !t)
		return 0;
	__u32 tgid = BPF_CORE_READ(t, tgid);
	if (!bpf_map_lookup_elem(&held_pids, &tgid))
		return 0;
	/* A sender not a container's is the host's: the agent (in its own
	 * cgroup; it forgets what it continues first), the kernel on behalf
	 * of an exiting host process, a second agent during a rolling update
	 * outside a scope (in the scope, only with the held list pinned and
	 * so shared: it forgets the process for both before it continues it). */
	struct task_struct *cur = bpf_get_current_task_btf();
	__u64 cg = bpf_get_current_cgroup_id();
	if (cg == gate_get(GATE_SELF) || (BPF_CORE_READ(cur, thread_pid, level) == 0 && !containers(cur, cg)))
		return 0;
	if (bpf_send_signal_task(t, SIGKILL, PIDTYPE_TGID, 0) == 0) {
		__u32 k = 0;
		__u64 *v = bpf_map_lookup_elem(&cont_killed, &k);
		if (v)
			*v += 1;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
