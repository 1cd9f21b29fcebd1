// SPDX-License-Identifier: GPL-2.0
/* Bulwark's exec sensor: every exec and every process exit on the node, as
 * events on a ring buffer (tp_btf programs: no tracefs, no kprobes, no
 * trampolines, so they load where LSM programs do not). Each event carries
 * the process, its parent, its cgroup v2 id, uid, the exec'd file's
 * identity (device, inode) and path, and the argument vector (bounded).
 * The agent attributes by cgroup id; a full ring buffer counts the event
 * lost, it never blocks the exec.
 *
 * The agent may name containers (their cgroup v2 ids, in "watched") and
 * what of them its fanotify marks hold (in "held": filesystems by device,
 * mounts by unique mount id). An exec by a process in a named container's
 * cgroup, or below it, of a file the marks do not hold is flagged unheld;
 * in a container named with WATCH_KILL the process is sent SIGKILL here,
 * after the new program image is loaded and before it runs an instruction
 * (the signal is delivered on the way back to user space), and the event
 * says so.
 *
 * The gate (hold until adopted): once the agent has adopted the containers
 * that ran at its start it sets gate[GATE_ON]. From then on an exec by a
 * container's task (gate.h: in the gate's cgroup scope whatever its pid
 * namespace, hostPID containers too; with no scope, in a pid namespace
 * other than the initial one) whose cgroup (or an ancestor) is not
 * watched, and whose own cgroup is neither the agent's (gate[GATE_SELF])
 * nor one the agent resolved as not its to judge (in the bounded LRU map
 * "ignored"), is sent SIGSTOP before the new program runs
 * an instruction, and its event flagged stopped: the agent adopts its
 * container, judges the file, and continues or kills the process. An
 * event that cannot be reserved on a full ring buffer cannot be judged:
 * such an exec is killed (fail closed) and counted. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define ARGV_MAX 256
#define PATH_MAX_EVENT 256

#define KIND_EXEC 1
#define KIND_EXIT 2
#define KIND_CONNECT 3

#define SIGKILL 9
#define SIGSTOP 19

/* watched values */
#define WATCH_REPORT 1
#define WATCH_KILL 2

/* event flags */
#define FLAG_CHECKED 1 /* the process is in a watched container */
#define FLAG_UNHELD 2  /* its file is on nothing the marks hold */
#define FLAG_KILLED 4  /* and it was sent SIGKILL */
#define FLAG_STOPPED 8 /* gated: sent SIGSTOP until the agent judges it */

/* held key kinds */
#define HELD_DEV 1
#define HELD_MOUNT 2

#define AF_INET 2
#define AF_INET6 10
#define TCP_SYN_SENT 2

struct event {
	__u64 cgroup;
	__u64 ino;
	__u64 mnt;
	__u32 dev;
	__u32 flags;
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__u32 kind;
	__s32 exit_code;
	__u32 argv_len;
	__u16 family;
	__u16 dport;
	__u8 daddr[16];
	char comm[16];
	char path[PATH_MAX_EVENT];
	char argv[ARGV_MAX];
};

enum {
	STAT_EVENTS = 0,
	STAT_LOST,
	STAT_KILLED,
	STAT_STOPPED,   /* gated execs stopped */
	STAT_GATE_LOST, /* gated execs killed: no room to report them */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct held_key {
	__u64 cgroup;
	__u64 id;
	__u32 kind;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} watched SEC(".maps");

/* held: the value is the epoch the agent held it in. The agent advances
 * the epoch after it marks a mount attached later and before it holds it;
 * an exec whose execve began in an earlier epoch may have opened its file
 * before the mark (fanotify never asked), so for it that mount is not
 * held. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct held_key);
	__type(value, __u64);
} held SEC(".maps");

/* epoch[0]: the agent's current epoch */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} epoch SEC(".maps");

/* exec_start: the epoch each thread's execve began in, by thread id (an
 * exec that never reaches sched_process_exec leaves its entry to the LRU);
 * none: epoch 0, the oldest */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} exec_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Cgroups the agent resolved as not its to judge (not a container of its
 * namespaces, or one in mode off): bounded, the least recently used goes
 * first (and is resolved again at its next exec). Only a process's own
 * cgroup is looked up, never an ancestor: a cgroup ignored does not let the
 * cgroups below it through. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} ignored SEC(".maps");

/* Processes the gate holds (bpf/gatecont.c kills one another continues). */
#include "held_pids.h"

/* The gate's settings and scope (shared with bpf/gatecont.c). */
#include "gate.h"

const struct event *unused_event __attribute__((unused));
const struct held_key *unused_held_key __attribute__((unused));

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &i);
	if (v)
		*v += 1;
}

static __always_inline struct event *start(struct task_struct *p, __u32 kind)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(STAT_LOST);
		return 0;
	}
	count(STAT_EVENTS);
	e->kind = kind;
	e->cgroup = bpf_get_current_cgroup_id();
	e->pid = BPF_CORE_READ(p, tgid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ino = 0;
	e->mnt = 0;
	e->dev = 0;
	e->flags = 0;
	e->exit_code = 0;
	e->argv_len = 0;
	e->family = 0;
	e->dport = 0;
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	e->path[0] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

/* watchedCgroup finds the current task's cgroup, or its nearest ancestor,
 * in watched: a process that made a cgroup below its container's is still
 * the container's. 0 when none is. */
static __always_inline __u64 watched_cgroup(__u64 cg, __u32 *how)
{
	__u32 *v = bpf_map_lookup_elem(&watched, &cg);
	if (v) {
		*how = *v;
		return cg;
	}
	for (int level = 1; level < CGROUP_DEPTH; level++) {
		__u64 a = bpf_get_current_ancestor_cgroup_id(level);
		if (a == 0 || a == cg)
			break;
		v = bpf_map_lookup_elem(&watched, &a);
		if (v) {
			*how = *v;
			return a;
		}
	}
	return 0;
}

/* heldBy says whether a mark of container cg held the file when an exec
 * that began in epoch start opened it: its filesystem (marked whole) or
 * its mount (marked alone), held in start or before. */
static __always_inline int held_by(__u64 cg, __u32 dev, __u64 mnt, __u64 start)
{
	struct held_key k = {.cgroup = cg, .id = dev, .kind = HELD_DEV};
	__u64 *v = bpf_map_lookup_elem(&held, &k);
	if (v && *v <= start)
		return 1;
	k.id = mnt;
	k.kind = HELD_MOUNT;
	v = bpf_map_lookup_elem(&held, &k);
	return v && *v <= start;
}

static __always_inline void exec_begins(void)
{
	__u32 zero = 0;
	__u64 *e = bpf_map_lookup_elem(&epoch, &zero);
	if (!e)
		return;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 v = *e;
	bpf_map_update_elem(&exec_start, &tid, &v, 0 /* BPF_ANY */);
}

/* execve and execveat record the epoch they begin in, before the file is
 * opened. */
SEC("tracepoint/syscalls/sys_enter_execve")
int bulwark_execve(void *ctx)
{
	exec_begins();
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int bulwark_execveat(void *ctx)
{
	exec_begins();
	return 0;
}

/* gated says whether the gate holds an exec of p in cgroup cg that no
 * watched container owns: the gate is on, p is a container's as the scope
 * tells (gate.h: in the scope's cgroups whatever its pid namespace, or,
 * with no scope, in a pid namespace of its own; never the agent's), and
 * cg is not ignored. */
static __always_inline int gated(struct task_struct *p, __u64 cg)
{
	if (!gate_get(GATE_ON))
		return 0;
	if (!containers(p, cg))
		return 0;
	return bpf_map_lookup_elem(&ignored, &cg) == 0;
}

SEC("tp_btf/sched_process_exec")
int bulwark_exec(unsigned long long *ctx)
{
	struct task_struct *p = (void *)ctx[0];
	__u32 old_tid = (__u32)ctx[1]; /* the thread that called execve */
	struct linux_binprm *bprm = (void *)ctx[2];
	__u64 began = 0;
	__u64 *st = bpf_map_lookup_elem(&exec_start, &old_tid);
	if (st) {
		began = *st;
		bpf_map_delete_elem(&exec_start, &old_tid);
	}
	struct file *f = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	__u32 dev = BPF_CORE_READ(inode, i_sb, s_dev);
	struct mount *mnt = (void *)((char *)BPF_CORE_READ(f, f_path.mnt) - bpf_core_field_offset(struct mount, mnt));
	__u64 mnt_id;
	if (bpf_core_field_exists(mnt->mnt_id_unique))
		mnt_id = BPF_CORE_READ(mnt, mnt_id_unique);
	else
		mnt_id = (__u32)BPF_CORE_READ(mnt, mnt_id);
	__u64 cg = bpf_get_current_cgroup_id();
	__u32 how = 0, flags = 0;
	__u64 wcg = watched_cgroup(cg, &how);
	if (wcg) {
		cg = wcg;
		flags = FLAG_CHECKED;
		if (!held_by(wcg, dev, mnt_id, began)) {
			flags |= FLAG_UNHELD;
			if (how == WATCH_KILL && bpf_send_signal(SIGKILL) == 0) {
				flags |= FLAG_KILLED;
				count(STAT_KILLED);
			}
		}
	}
	struct event *e = 0;
	if (!wcg && gated(p, cg)) {
		e = start(p, KIND_EXEC);
		if (!e) { /* nobody would continue it: killed, not left running unjudged */
			if (bpf_send_signal(SIGKILL) == 0)
				count(STAT_GATE_LOST);
			return 0;
		}
		if (bpf_send_signal(SIGSTOP) == 0) {
			__u32 tgid = BPF_CORE_READ(p, tgid);
			__u64 born = BPF_CORE_READ(p, start_boottime);
			bpf_map_update_elem(&held_pids, &tgid, &born, 0 /* BPF_ANY */);
			flags |= FLAG_STOPPED;
			count(STAT_STOPPED);
		}
	}
	if (!e)
		e = start(p, KIND_EXEC);
	if (!e)
		return 0;
	e->cgroup = cg;
	e->flags = flags;
	e->mnt = mnt_id;
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->dev = dev;
	if (bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename)) < 0)
		e->path[0] = 0;
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long as = BPF_CORE_READ(mm, arg_start);
	unsigned long ae = BPF_CORE_READ(mm, arg_end);
	__u32 n = ae > as ? ae - as : 0;
	if (n > ARGV_MAX - 1)
		n = ARGV_MAX - 1;
	n &= ARGV_MAX - 1;
	if (n > 0 && bpf_probe_read_user(e->argv, n, (void *)as) == 0)
		e->argv_len = n;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int bulwark_exit(unsigned long long *ctx)
{
	struct task_struct *p = (void *)ctx[0];
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0; /* a thread, not the process */
	__u32 tgid = BPF_CORE_READ(p, tgid);
	bpf_map_delete_elem(&held_pids, &tgid); /* its pid may come back for another */
	struct event *e = start(p, KIND_EXIT);
	if (!e)
		return 0;
	e->exit_code = BPF_CORE_READ(p, exit_code);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* An outbound TCP connection: the socket moves to SYN_SENT inside the
 * connect call, so the current task is the one connecting. */
SEC("tp_btf/inet_sock_set_state")
int bulwark_connect(unsigned long long *ctx)
{
	struct sock *sk = (void *)ctx[0];
	int newstate = (int)ctx[2];
	if (newstate != TCP_SYN_SENT)
		return 0;
	struct task_struct *p = (void *)bpf_get_current_task_btf();
	struct event *e = start(p, KIND_CONNECT);
	if (!e)
		return 0;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 port = BPF_CORE_READ(sk, __sk_common.skc_dport);
	e->dport = (port >> 8) | (port << 8);
	if (e->family == AF_INET) {
		__be32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->daddr, &a, 4);
	} else if (e->family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
