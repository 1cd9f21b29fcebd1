#!/usr/bin/env bash
# bench/agent: bulwark-agent's fanotify path (issue 12, acceptance 3).
# (a) drifted execs decided per second with no loss, agent CPU, at 1k/s,
#     10k/s and flat out; (b) added latency of a listed exec (cache hit),
#     agent in prevent vs none; (c) memory with 100 watched containers.
# (a) and (b) also run a floor listener (read, fixed verdict, close: the
# kernel's round trip), sides alternated in a random order per round.
# (a) prints the median and best rate and this process's CPU per event
# (what load moves least). BENCH_FLOOR_POLL=1 adds the polling floor;
# BENCH_CPUPROFILE=file writes a CPU profile; bench/agent/trace.sh traces
# where an exec's time goes (BENCH_TRACE=1 marks the sides).
# Needs root. Usage: bash bench/agent/run.sh [-duration 10s] [-containers 100] ...
# Results and the load they were measured at: docs/runtime-measured.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)/bench-agent
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/agent
echo "uptime: $(uptime)"
"$bin" "$@"
# Falco and Tetragon on the same storm: see docs/runtime-measured.md (neither is
# built here; bench/build-peers.sh lists what the machine offers).
