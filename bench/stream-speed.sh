#!/usr/bin/env bash
# stream-speed.sh — the streaming inventory on a registry-style image: about
# 2 GB in 20 gzip layers (bench/streamimage), cold cache, from an OCI layout
# and from an in-process registry; `bulwark sbom` against Trivy
# (--cache-backend memory) and Syft, RUNS runs each (default 5), median wall
# and CPU (user+system) time and peak RSS, with the load average. Then: what bulwark left in its cache, and a second image
# sharing 19 of the 20 layers read with the first one's cache. The floor-*
# rows time bench/hashfloor: reading and hashing the layer blobs and nothing
# else, the least any verifying pass does.
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
# The binary is copied, not run where the linker wrote it: run from the
# linker's file, the same binary showed up to 17 MB more peak RSS (50 MB
# against 33 MB for `bulwark version`; large page-cache folios, presumably).
[ -n "${BULWARK_BIN:-}" ] || { go build -trimpath -o "$OUT/bulwark.built" ./cmd/bulwark; BULWARK_BIN="$OUT/bulwark.built"; }
rm -f "$OUT/bulwark"; cp "$BULWARK_BIN" "$OUT/bulwark"
go build -trimpath -o "$OUT/streamimage" ./bench/streamimage
go build -trimpath -o "$OUT/hashfloor" ./bench/hashfloor
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

# median prints the median of its arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure NAME CMD...: RUNS runs, each with a fresh bulwark cache; prints
# "NAME median_wall_s median_cpu_s max_rss_mb", CPU being user+system (the
# steadier figure when other work shares the machine)
measure() {
	local name=$1; shift
	local times=() cpus=() rss=0
	for _ in $(seq "$RUNS"); do
		rm -rf "$OUT/cache"
		/usr/bin/time -f '%e %U %S %M' -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/err.txt" || { echo "$name failed: $*" >&2; cat "$OUT/err.txt" >&2; return; }
		local e u s r
		read -r e u s r < <(tail -1 "$OUT/time.txt")
		times+=("$e")
		cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u+s}')")
		[ "$r" -gt "$rss" ] && rss=$r
	done
	echo "$name $(median "${times[@]}") $(median "${cpus[@]}") $((rss / 1024))"
}

B="$OUT/bulwark sbom -q -f cyclonedx --cache-dir $OUT/cache"
echo "load before: $(uptime)"
echo "name wall_s cpu_s rss_mb (medians of $RUNS; RSS the largest)"
{
	measure bulwark-layout $B "$OUT/oci"
	measure bulwark-registry $B "$REG/bench/one:1"
	measure bulwark-layout-keep-layers $B --keep-layers "$OUT/oci"
	# The floor under any pass that checks what it reads: every layer blob
	# read and SHA-256'd on both cores, nothing decompressed, nothing parsed
	# (bench/hashfloor); and decompressing every layer with no hash at all.
	measure floor-layout-sha256 "$OUT/hashfloor" -mode sha256 "$OUT/oci"
	measure floor-layout-inflate "$OUT/hashfloor" -mode inflate "$OUT/oci"
	measure floor-registry-sha256 "$OUT/hashfloor" -mode sha256 "http://$REG/v2/bench/one/manifests/1"
	if [ "$PEERS" = 1 ]; then
		measure trivy-layout "$PEERS_DIR/bin/trivy" image --input "$OUT/oci" --cache-backend memory --offline-scan --skip-db-update --skip-java-db-update -q -f cyclonedx
		measure trivy-registry "$PEERS_DIR/bin/trivy" image --insecure "$REG/bench/one:1" --cache-backend memory --offline-scan --skip-db-update --skip-java-db-update -q -f cyclonedx
		measure syft-layout "$PEERS_DIR/bin/syft" -q "oci-dir:$OUT/oci" -o cyclonedx-json
		measure syft-registry env SYFT_REGISTRY_INSECURE_USE_HTTP=true "$PEERS_DIR/bin/syft" -q "registry:$REG/bench/one:1" -o cyclonedx-json
	fi
} | tee "$OUT/speed.txt"
echo "load after: $(uptime)"

# what stays in the cache after a cold run, against the image's size
rm -rf "$OUT/cache"
$B "$OUT/oci" > /dev/null
image=$(du -sbL "$OUT/oci/blobs" | cut -f1)
cache=$(du -sb "$OUT/cache" | cut -f1)
echo "cache after one cold run: $cache bytes for an image of $image bytes ($(awk -v c="$cache" -v i="$image" 'BEGIN {printf "%.3f", 100*c/i}')%)"

# the second image on the first one's cache (19 of 20 layers shared),
# against the first image cold, RUNS times each; wall and CPU medians
# timed RUN...: prints "wall cpu" of one run
timed() { /usr/bin/time -f '%e %U %S' -o "$OUT/time.txt" "$@" >/dev/null; awk '{printf "%s %.2f\n", $1, $2+$3}' "$OUT/time.txt"; }
cw=() cc=() sw=() sc=() ww=()
for _ in $(seq "$RUNS"); do
	rm -rf "$OUT/cache"
	read -r w c < <(timed $B "$OUT/oci"); cw+=("$w"); cc+=("$c")
	read -r w c < <(timed $B "$OUT/oci"); ww+=("$w")
	rm -rf "$OUT/cache.first"; cp -a "$OUT/cache" "$OUT/cache.first"
	read -r w c < <(timed $B "$OUT/oci2"); sw+=("$w"); sc+=("$c")
	rm -rf "$OUT/cache"; mv "$OUT/cache.first" "$OUT/cache"
done
cold=$(median "${cw[@]}") coldc=$(median "${cc[@]}") second=$(median "${sw[@]}") secondc=$(median "${sc[@]}")
echo "first image cold ${cold}s (CPU ${coldc}s); second image sharing 19 layers ${second}s (CPU ${secondc}s): $(awk -v a="$second" -v b="$cold" 'BEGIN {printf "%.1f", 100*a/b}')% of cold by wall, $(awk -v a="$secondc" -v b="$coldc" 'BEGIN {printf "%.1f", 100*a/b}')% by CPU; first again, warm $(median "${ww[@]}")s"
echo "load at the end: $(uptime)"
