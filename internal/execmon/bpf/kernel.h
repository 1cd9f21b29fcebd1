/* Minimal kernel type definitions for exec.c: only the fields read, each
 * access a CO-RE relocation against the running kernel's BTF. */
#ifndef BULWARK_EXECMON_KERNEL_H
#define BULWARK_EXECMON_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed int __s32;
typedef signed long long __s64;
typedef __u32 __be32;
typedef __u16 __be16;
typedef __u32 __wsum;
typedef __u32 dev_t;
typedef int pid_t;

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

struct super_block {
	dev_t s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct super_block *mnt_sb;
} __attribute__((preserve_access_index));

/* The kernel's private mount (fs/mount.h): a vfsmount is its member mnt. */
struct mount {
	struct vfsmount mnt;
	int mnt_id;
	__u64 mnt_id_unique; /* Linux 6.8 */
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
	struct path f_path;
} __attribute__((preserve_access_index));

struct linux_binprm {
	struct file *file;
	const char *filename;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

/* A task's pid (the gate): level is the depth of the pid namespace it was
 * made in, 0 for the initial one. */
struct pid {
	unsigned int level;
} __attribute__((preserve_access_index));

/* A task's thread group (the gate's guard): flags has SIGNAL_GROUP_EXIT
 * once a fatal signal is on its way. */
struct signal_struct {
	unsigned int flags;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int __state; /* Linux 5.14+ (the guard is 6.13+) */
	struct signal_struct *signal;
	struct pid *thread_pid;
	pid_t pid;
	pid_t tgid;
	int exit_code;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	__u64 start_boottime; /* ns since boot: /proc/PID/stat's starttime (in ticks) */
} __attribute__((preserve_access_index));

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	__be32 skc_daddr;
	__be16 skc_dport;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

#endif
