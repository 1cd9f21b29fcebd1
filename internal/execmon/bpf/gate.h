/* gate: the gate's settings, shared by exec.c (which holds execs) and
 * gatecont.c (its guard, which kills a held process another continues):
 * the agent loads gatecont.c with this map replaced by exec.c's.
 *
 * The gate's scope: with gate[GATE_UNDER] set (the agent's --gate-cgroup,
 * on a kubelet node the pods' cgroup root), a task whose cgroup is that one
 * or below it is a container's, whatever its pid namespace (hostPID
 * containers are in the host's); without it a container's task is one in
 * a pid namespace other than the initial one (hostPID containers are then
 * out of reach). The agent's own cgroup (gate[GATE_SELF]) is never a
 * container's here. */
#ifndef BULWARK_EXECMON_GATE_H
#define BULWARK_EXECMON_GATE_H

/* gate indexes */
#define GATE_ON 0    /* nonzero: gate execs of cgroups the agent does not know */
#define GATE_SELF 1  /* the agent's own cgroup v2 id: never gated */
#define GATE_UNDER 2 /* nonzero: gate only this cgroup and those below it */
#define GATE_MAX 3

/* how deep below the root a container's cgroup, or one its processes
 * made below it, is looked for */
#define CGROUP_DEPTH 12

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GATE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gate SEC(".maps");

static __always_inline __u64 gate_get(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&gate, &i);
	return v ? *v : 0;
}

/* below says whether the current task's cgroup cg is under, or below it. */
static __always_inline int below(__u64 cg, __u64 under)
{
	if (cg == under)
		return 1;
	for (int level = 1; level < CGROUP_DEPTH; level++) {
		__u64 a = bpf_get_current_ancestor_cgroup_id(level);
		if (a == 0 || a == cg)
			break;
		if (a == under)
			return 1;
	}
	return 0;
}

/* containers says whether the current task p, in cgroup cg, is a
 * container's as the gate's scope tells (above): not the agent's own. */
static __always_inline int containers(struct task_struct *p, __u64 cg)
{
	if (cg == gate_get(GATE_SELF))
		return 0;
	__u64 under = gate_get(GATE_UNDER);
	if (under)
		return below(cg, under);
	return BPF_CORE_READ(p, thread_pid, level) != 0;
}

#endif
