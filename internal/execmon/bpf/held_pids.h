/* held_pids: processes the gate holds (by tgid) until the agent's
 * verdict, shared by exec.c (which fills it) and gatecont.c (which kills a
 * held process another continues): the agent loads gatecont.c with this
 * map replaced by exec.c's. The agent deletes an entry before it continues
 * the process or kills it; an exit deletes it too. The value is the
 * task's start_boottime: the agent pins the map in bpffs, and an agent
 * restarted after a crash judges what it finds there, a process of the
 * same pid and start time only (a pid reused is another process). */
#ifndef BULWARK_EXECMON_HELD_PIDS_H
#define BULWARK_EXECMON_HELD_PIDS_H

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} held_pids SEC(".maps");

#endif
