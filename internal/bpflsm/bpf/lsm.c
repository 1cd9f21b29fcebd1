// SPDX-License-Identifier: GPL-2.0
/* Bulwark's BPF-LSM exec enforcement.
 *
 * bprm_check_security runs for every execve/execveat after the kernel has
 * opened the file and before the point of no return: returning -EPERM makes
 * the exec fail in the calling process, which keeps running its old program.
 *
 * The decision is made here, from maps the agent fills:
 *   containers: cgroup id (cgroup v2, bpf_get_current_cgroup_id) -> mode
 *   allowed:    (cgroup id, device, inode) -> the inode's change time
 * An exec by a process of a watched cgroup is allowed when the file's
 * identity is in that cgroup's list and its change time is unchanged (a
 * write, chmod or chown moves it, so a modified file is drift). Anything
 * else is drift: refused in prevent, let through in detect; both are
 * reported on the ring buffer. Processes of unwatched cgroups are not
 * looked at beyond one map lookup. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define EPERM 1

#define MODE_DETECT 1
#define MODE_PREVENT 2

#define VERDICT_ALLOWED 0
#define VERDICT_REPORTED 1
#define VERDICT_REFUSED 2

#define REASON_NOT_LISTED 1
#define REASON_MODIFIED 2

#define PATH_MAX_EVENT 256

#define PROT_EXEC 0x4

/* container.flags */
#define FLAG_MMAP 1

/* event.hook */
#define HOOK_EXEC 1
#define HOOK_MMAP 2
#define HOOK_MPROTECT 3

struct container {
	__u32 mode;
	__u32 flags;
};

struct file_key {
	__u64 cgroup;
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

struct file_val {
	__s64 ctime_sec;
	__u32 ctime_nsec;
	__u32 _pad;
};

struct event {
	__u64 cgroup;
	__u64 ino;
	__s64 ctime_sec;
	__u32 ctime_nsec;
	__u32 dev;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 verdict;
	__u32 reason;
	__u32 hook;
	char comm[16];
	char path[PATH_MAX_EVENT];
};

/* Counters, per CPU: indexes below. */
enum {
	STAT_CHECKED = 0,
	STAT_ALLOWED,
	STAT_REPORTED,
	STAT_REFUSED,
	STAT_EVENTS_LOST,
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct container);
} containers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1048576);
	__uint(map_flags, 1); /* BPF_F_NO_PREALLOC: memory as entries are added */
	__type(key, struct file_key);
	__type(value, struct file_val);
} allowed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Keeps the event type in the object's BTF for bpf2go -type event (an
 * 8-byte .bss map; the ring buffer itself carries no type). */
const struct event *unused_event __attribute__((unused));

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &i);
	if (v)
		*v += 1;
}

static __always_inline void inode_ctime(struct inode *inode, __s64 *sec, __u32 *nsec)
{
	if (bpf_core_field_exists(struct inode___v611, i_ctime_sec)) {
		struct inode___v611 *i = (void *)inode;
		*sec = BPF_CORE_READ(i, i_ctime_sec);
		*nsec = BPF_CORE_READ(i, i_ctime_nsec);
	} else if (bpf_core_field_exists(struct inode___v66, __i_ctime)) {
		struct inode___v66 *i = (void *)inode;
		*sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
		*nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
	} else {
		struct inode___v61 *i = (void *)inode;
		*sec = BPF_CORE_READ(i, i_ctime.tv_sec);
		*nsec = BPF_CORE_READ(i, i_ctime.tv_nsec);
	}
}

/* decide judges one file for the current process of watched cgroup cg:
 * 0 to allow, -EPERM to refuse. name is the path (exec) or the file's own
 * name (mmap, mprotect) for the event. */
static __always_inline int decide(__u64 cg, struct container *c, struct file *file,
				  const char *name, __u32 hook)
{
	count(STAT_CHECKED);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct file_key k = {};
	k.cgroup = cg;
	k.ino = BPF_CORE_READ(inode, i_ino);
	k.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	__s64 sec = 0;
	__u32 nsec = 0;
	inode_ctime(inode, &sec, &nsec);

	__u32 reason = REASON_NOT_LISTED;
	struct file_val *v = bpf_map_lookup_elem(&allowed, &k);
	if (v) {
		if (v->ctime_sec == sec && v->ctime_nsec == nsec) {
			count(STAT_ALLOWED);
			return 0;
		}
		reason = REASON_MODIFIED;
	}

	__u32 verdict = c->mode == MODE_PREVENT ? VERDICT_REFUSED : VERDICT_REPORTED;
	count(verdict == VERDICT_REFUSED ? STAT_REFUSED : STAT_REPORTED);

	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__u64 pt = bpf_get_current_pid_tgid();
		e->cgroup = cg;
		e->ino = k.ino;
		e->dev = k.dev;
		e->ctime_sec = sec;
		e->ctime_nsec = nsec;
		e->pid = (__u32)pt;
		e->tgid = pt >> 32;
		e->uid = (__u32)bpf_get_current_uid_gid();
		e->verdict = verdict;
		e->reason = reason;
		e->hook = hook;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		if (bpf_probe_read_kernel_str(e->path, sizeof(e->path), name) < 0)
			e->path[0] = 0;
		bpf_ringbuf_submit(e, 0);
	} else {
		count(STAT_EVENTS_LOST);
	}
	return verdict == VERDICT_REFUSED ? -EPERM : 0;
}

SEC("lsm.s/bprm_check_security")
int bulwark_bprm_check(unsigned long long *ctx)
{
	struct linux_binprm *bprm = (void *)ctx[0];
	int ret = (int)ctx[1];
	if (ret != 0)
		return ret; /* an earlier LSM already said no */
	__u64 cg = bpf_get_current_cgroup_id();
	struct container *c = bpf_map_lookup_elem(&containers, &cg);
	if (!c)
		return 0;
	return decide(cg, c, BPF_CORE_READ(bprm, file), BPF_CORE_READ(bprm, filename), HOOK_EXEC);
}

/* The loader trick (ld.so /tmp/x) and its kin map a file executable
 * without exec'ing it: with FLAG_MMAP, every executable file mapping of a
 * watched process is judged like an exec (the list must then hold the
 * shared libraries and the ELF interpreter as well). Anonymous mappings
 * (JITs) are not files and are not looked at. */
SEC("lsm/mmap_file")
int bulwark_mmap_file(unsigned long long *ctx)
{
	struct file *file = (void *)ctx[0];
	unsigned long prot = ctx[2];
	int ret = (int)ctx[4];
	if (ret != 0)
		return ret;
	if (!file || !(prot & PROT_EXEC))
		return 0;
	__u64 cg = bpf_get_current_cgroup_id();
	struct container *c = bpf_map_lookup_elem(&containers, &cg);
	if (!c || !(c->flags & FLAG_MMAP))
		return 0;
	return decide(cg, c, file, (const char *)BPF_CORE_READ(file, f_path.dentry, d_name.name), HOOK_MMAP);
}

/* The same for a mapping made executable later (mmap PROT_READ, then
 * mprotect PROT_EXEC). */
SEC("lsm/file_mprotect")
int bulwark_file_mprotect(unsigned long long *ctx)
{
	struct vm_area_struct *vma = (void *)ctx[0];
	unsigned long prot = ctx[2];
	int ret = (int)ctx[3];
	if (ret != 0)
		return ret;
	if (!(prot & PROT_EXEC))
		return 0;
	struct file *file = BPF_CORE_READ(vma, vm_file);
	if (!file)
		return 0;
	__u64 cg = bpf_get_current_cgroup_id();
	struct container *c = bpf_map_lookup_elem(&containers, &cg);
	if (!c || !(c->flags & FLAG_MMAP))
		return 0;
	return decide(cg, c, file, (const char *)BPF_CORE_READ(file, f_path.dentry, d_name.name), HOOK_MPROTECT);
}

char LICENSE[] SEC("license") = "GPL";
