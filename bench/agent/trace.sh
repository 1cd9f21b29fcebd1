#!/usr/bin/env bash
# bench/agent/trace.sh: where an exec's time goes under the listeners of
# bench/agent's (b): records the scheduler's and the exec's tracepoints
# (tracefs; the function tracers are refused on the Firecracker guest)
# while the bench runs FILE's latency rounds, then splits the trace per
# side (bench/agent/tracesplit). Needs root. Usage:
#   bash bench/agent/trace.sh [true|known|script] [execs per side]
# Results: docs/runtime-measured.md ("Where the round trip's time goes").
set -euo pipefail
cd "$(dirname "$0")/../.."
file=${1:-true}
n=${2:-1000}
T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs nodev $T
dir=$(mktemp -d)
trap 'echo 0 > $T/tracing_on; echo > $T/set_event; echo > $T/set_event_pid; rm -rf "$dir"' EXIT
go build -o "$dir/bench-agent" ./bench/agent
echo 0 > $T/tracing_on
echo > $T/trace
echo 30000 > $T/buffer_size_kb
echo > $T/set_event
for e in sched:sched_switch sched:sched_wakeup sched:sched_wakeup_new sched:sched_migrate_task \
	syscalls:sys_enter_execve syscalls:sys_exit_execve syscalls:sys_enter_exit_group \
	syscalls:sys_exit_read syscalls:sys_enter_write; do
	echo "$e" >> $T/set_event
done
echo 1 > $T/options/event-fork
echo "uptime: $(uptime)"
# Only the bench and what it forks are traced (set_event_pid, event-fork).
bash -c "echo \$\$ > $T/set_event_pid; echo 1 > $T/tracing_on; BENCH_TRACE=1 exec $dir/bench-agent -files $file -latency-execs $n -latency-rounds 10 -rates 1000 -storm-rounds 1 -duration 100ms -containers 1" | grep -v '^(a)\|^(c)'
echo 0 > $T/tracing_on
cat $T/trace > "$dir/trace.txt"
go run ./bench/agent/tracesplit -comm "$file" "$dir/trace.txt"
