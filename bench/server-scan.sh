#!/usr/bin/env bash
# server-scan.sh — what a `bulwark server` scan of the streaming benchmark
# image costs: about 2 GB in 20 gzip layers (bench/streamimage) served by an
# in-process registry; a cold server (fresh data directory, one worker)
# scans bench/one:1, then bench/two:1, which shares 19 of its 20 layers.
# Prints each job's time (queued to done, polled every 0.1 s), the bytes
# left under DATA_DIR/cache after each, the server's CPU time (both scans,
# from /proc) and the layer counters of /metrics;
# RUNS times (default 3). With BEFORE_BIN=path, the same runs with that
# binary too (an older build, for before/after figures).
#
#   bench/server-scan.sh
#   BEFORE_BIN=/tmp/bulwark-old RUNS=3 bench/server-scan.sh
#
# Not run in CI (minutes, 4 GB of disk, and 2 GB more per run of a build
# that keeps decompressed layers).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BULWARK_BENCH_DIR:-/tmp/bulwark-stream}"
RUNS="${RUNS:-3}"

mkdir -p "$OUT"
if [ -n "${BULWARK_BIN:-}" ]; then cp "$BULWARK_BIN" "$OUT/bulwark"; else go build -trimpath -o "$OUT/bulwark" ./cmd/bulwark; fi
go build -trimpath -o "$OUT/streamimage" ./bench/streamimage
"$OUT/streamimage" -out "$OUT"
rm -f "$OUT/registry.addr"
"$OUT/streamimage" -out "$OUT" -serve 127.0.0.1:0 > "$OUT/registry.addr" &
REG_PID=$!
SERVER_PID=
trap 'kill $REG_PID $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$OUT/registry.addr" ] && break; sleep 1; done
REG=$(head -1 "$OUT/registry.addr")

# run BIN LABEL: one cold server, two scans
run() {
	local bin=$1 label=$2 data="$OUT/server-data"
	rm -rf "$data"
	mkdir -p "$data"
	local token port
	token=$("$bin" server token create --data-dir "$data" --name bench --role admin 2>/dev/null | grep -o 'bwk_[A-Za-z0-9_-]*' | head -1)
	port=$((20000 + RANDOM % 10000))
	"$bin" server --data-dir "$data" --listen "127.0.0.1:$port" --allow-private-host 127.0.0.1 --workers 1 >"$OUT/server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
	local api="http://127.0.0.1:$port/api/v1" line="$label"
	for img in bench/one:1 bench/two:1; do
		local start job state
		start=$(date +%s.%N)
		job=$(curl -sf -H "Authorization: Bearer $token" -d "{\"image\":\"$REG/$img\"}" "$api/scans" | grep -o '"job": *[0-9]*' | grep -o '[0-9]*$')
		while :; do
			state=$(curl -sf -H "Authorization: Bearer $token" "$api/jobs/$job" | grep -o '"state": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"')
			[ "$state" = done ] && break
			[ "$state" = failed ] && { echo "$label: scan of $img failed, see $OUT/server.log" >&2; break; }
			sleep 0.1
		done
		line="$line $img $(echo "$(date +%s.%N) - $start" | bc | xargs printf '%.2f')s cache $(du -sb "$data/cache" 2>/dev/null | cut -f1) bytes;"
	done
	local tck cpu
	tck=$(getconf CLK_TCK)
	cpu=$(awk -v t="$tck" '{printf "server CPU %.2fs user %.2fs system", $14/t, $15/t}' "/proc/$SERVER_PID/stat")
	echo "$line $cpu; $(curl -s "http://127.0.0.1:$port/metrics" | grep '^bulwark_layers' | tr '\n' ' ')"
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	rm -rf "$data"
}

uptime
for _ in $(seq "$RUNS"); do
	run "$OUT/bulwark" streaming
	if [ -n "${BEFORE_BIN:-}" ]; then run "$BEFORE_BIN" before; fi
done | tee "$OUT/server-scan.txt"
uptime
