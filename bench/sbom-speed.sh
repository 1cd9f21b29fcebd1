#!/usr/bin/env bash
# sbom-speed.sh — time `bulwark sbom` against Trivy and Syft on the same image in
# the same run: RUNS runs each (default 7), median wall time and peak RSS.
#
#   bench/sbom-speed.sh [IMAGE.tar]
#
# Peers come from bench/build-peers.sh (outside the repository). Each tool
# reads the same `docker save` archive; none keeps a cache between runs
# (bulwark reads uncompressed layers in place; trivy --cache-backend memory).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR="${BULWARK_PEERS_DIR:-$HOME/.cache/bulwark-peers}"
OUT="${BULWARK_BENCH_DIR:-/tmp/bulwark-bench}"
IMAGE="${1:-$OUT/image.tar}"
RUNS="${RUNS:-7}"

[ -f "$IMAGE" ] || go run ./bench/mkimage -out "$OUT" >/dev/null
[ -x "$PEERS_DIR/bin/syft" ] && [ -x "$PEERS_DIR/bin/trivy" ] || bench/build-peers.sh syft trivy
go build -trimpath -o "$OUT/bulwark" ./cmd/bulwark
export SYFT_CHECK_FOR_APP_UPDATE=false

# measure NAME CMD...: RUNS runs after one warm-up; prints "NAME median_s max_rss_mb"
measure() {
	local name=$1; shift
	"$@" >/dev/null 2>&1 || { echo "$name failed: $*" >&2; "$@" >/dev/null; }
	local times=() rss=0
	for _ in $(seq "$RUNS"); do
		local line
		/usr/bin/time -f '%e %M' -o "$OUT/time.txt" "$@" >/dev/null 2>&1
		line=$(tail -1 "$OUT/time.txt")
		times+=("${line% *}")
		local r=${line#* }
		[ "$r" -gt "$rss" ] && rss=$r
	done
	local median
	median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "$name $median $((rss / 1024))"
}

rm -rf "$OUT/cache-speed"
{
	measure bulwark "$OUT/bulwark" sbom "$IMAGE" -q -f cyclonedx --cache-dir "$OUT/cache-speed"
	measure trivy "$PEERS_DIR/bin/trivy" image --input "$IMAGE" --cache-backend memory --offline-scan --skip-db-update --skip-java-db-update -q -f cyclonedx
	measure syft "$PEERS_DIR/bin/syft" -q "docker-archive:$IMAGE" -o cyclonedx-json
} | tee "$OUT/speed.txt"

awk -v img="$IMAGE" '
	{t[$1]=$2; m[$1]=$3}
	END {
		printf "\nimage: %s\n", img
		printf "bulwark %.2fs %dMB | trivy %.2fs %dMB | syft %.2fs %dMB\n", t["bulwark"], m["bulwark"], t["trivy"], m["trivy"], t["syft"], m["syft"]
		if (t["bulwark"] > 0) printf "speed-up: %.1fx vs trivy, %.1fx vs syft\n", t["trivy"]/t["bulwark"], t["syft"]/t["bulwark"]
	}' "$OUT/speed.txt"
