#!/usr/bin/env bash
# stream-speed.sh — the streaming inventory on a registry-style image: about
# 2 GB in 20 gzip layers (bench/streamimage), cold cache, from an OCI layout
# and from an in-process registry; `bulwark sbom` against Trivy
# (--cache-backend memory) and Syft, RUNS runs each (default 5), median wall
# time and peak RSS. Then: what bulwark left in its cache, and a second image
# sharing 19 of the 20 layers read with the first one's cache.
#
#   bench/stream-speed.sh
#
# Not run in CI (minutes, 4 GB of disk). Peers come from bench/build-peers.sh
# (PEERS=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR="${BULWARK_PEERS_DIR:-$HOME/.cache/bulwark-peers}"
OUT="${BULWARK_BENCH_DIR:-/tmp/bulwark-stream}"
RUNS="${RUNS:-5}"

mkdir -p "$OUT"
if [ -n "${BULWARK_BIN:-}" ]; then cp "$BULWARK_BIN" "$OUT/bulwark"; else go build -trimpath -o "$OUT/bulwark" ./cmd/bulwark; fi
go build -trimpath -o "$OUT/streamimage" ./bench/streamimage
"$OUT/streamimage" -out "$OUT"
"$OUT/streamimage" -out "$OUT" -serve 127.0.0.1:0 > "$OUT/registry.addr" &
REG_PID=$!
trap 'kill $REG_PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$OUT/registry.addr" ] && break; sleep 1; done
REG=$(head -1 "$OUT/registry.addr")
export SYFT_CHECK_FOR_APP_UPDATE=false
PEERS="${PEERS:-1}" # PEERS=0: bulwark only
if [ "$PEERS" = 1 ]; then
	[ -x "$PEERS_DIR/bin/syft" ] && [ -x "$PEERS_DIR/bin/trivy" ] || bench/build-peers.sh syft trivy || PEERS=0
fi

# measure NAME CMD...: RUNS runs, each with a fresh bulwark cache; prints
# "NAME median_s max_rss_mb"
measure() {
	local name=$1; shift
	local times=() rss=0
	for _ in $(seq "$RUNS"); do
		rm -rf "$OUT/cache"
		/usr/bin/time -f '%e %M' -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/err.txt" || { echo "$name failed: $*" >&2; cat "$OUT/err.txt" >&2; return; }
		local line; line=$(tail -1 "$OUT/time.txt")
		times+=("${line% *}")
		local r=${line#* }
		[ "$r" -gt "$rss" ] && rss=$r
	done
	echo "$name $(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') $((rss / 1024))"
}

B="$OUT/bulwark sbom -q -f cyclonedx --cache-dir $OUT/cache"
{
	measure bulwark-layout $B "$OUT/oci"
	measure bulwark-registry $B "$REG/bench/one:1"
	measure bulwark-layout-keep-layers $B --keep-layers "$OUT/oci"
	if [ "$PEERS" = 1 ]; then
		measure trivy-archive "$PEERS_DIR/bin/trivy" image --input "$OUT/oci.tar" --cache-backend memory --offline-scan --skip-db-update --skip-java-db-update -q -f cyclonedx
		measure trivy-registry "$PEERS_DIR/bin/trivy" image --insecure "$REG/bench/one:1" --cache-backend memory --offline-scan --skip-db-update --skip-java-db-update -q -f cyclonedx
		measure syft-layout "$PEERS_DIR/bin/syft" -q "oci-dir:$OUT/oci" -o cyclonedx-json
		measure syft-registry env SYFT_REGISTRY_INSECURE_USE_HTTP=true "$PEERS_DIR/bin/syft" -q "registry:$REG/bench/one:1" -o cyclonedx-json
	fi
} | tee "$OUT/speed.txt"

# what stays in the cache after a cold run, against the image's size
rm -rf "$OUT/cache"
$B "$OUT/oci" > /dev/null
image=$(du -sbL "$OUT/oci/blobs" | cut -f1)
cache=$(du -sb "$OUT/cache" | cut -f1)
echo "cache after one cold run: $cache bytes for an image of $image bytes ($(awk -v c="$cache" -v i="$image" 'BEGIN {printf "%.3f", 100*c/i}')%)"

# the second image on the first one's cache (19 of 20 layers shared)
first=$( { /usr/bin/time -f '%e' $B "$OUT/oci" >/dev/null; } 2>&1 | tail -1)
rm -rf "$OUT/cache"
$B "$OUT/oci" > /dev/null
second=$( { /usr/bin/time -f '%e' $B "$OUT/oci2" >/dev/null; } 2>&1 | tail -1)
rm -rf "$OUT/cache"
cold=$( { /usr/bin/time -f '%e' $B "$OUT/oci" >/dev/null; } 2>&1 | tail -1)
echo "first image cold ${cold}s; second image sharing 19 layers ${second}s ($(awk -v a="$second" -v b="$cold" 'BEGIN {printf "%.0f", 100*a/b}')% of cold); first again, warm ${first}s"
