#!/usr/bin/env bash
# syft-compare.sh — compare the packages bulwark and Syft find in the same image,
# per package type (deb, go-module, npm), and print every difference.
#
#   bench/syft-compare.sh [IMAGE.tar]
#
# IMAGE.tar defaults to the benchmark image built by `go run ./bench/mkimage`
# (debootstrap bookworm minbase + a Go binary + an npm tree). Syft comes from
# bench/build-peers.sh (outside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR="${BULWARK_PEERS_DIR:-$HOME/.cache/bulwark-peers}"
OUT="${BULWARK_BENCH_DIR:-/tmp/bulwark-bench}"
IMAGE="${1:-$OUT/image.tar}"

[ -f "$IMAGE" ] || go run ./bench/mkimage -out "$OUT" >/dev/null
[ -x "$PEERS_DIR/bin/syft" ] || bench/build-peers.sh syft
go build -o "$OUT/bulwark" ./cmd/bulwark

"$OUT/bulwark" sbom "$IMAGE" -q -f json --cache-dir "$OUT/cache" >"$OUT/bulwark.json"
SYFT_CHECK_FOR_APP_UPDATE=false "$PEERS_DIR/bin/syft" -q "docker-archive:$IMAGE" -o json >"$OUT/syft.json"

python3 - "$OUT/bulwark.json" "$OUT/syft.json" <<'PY'
import json, sys
from collections import defaultdict

bulwark = json.load(open(sys.argv[1]))
syft = json.load(open(sys.argv[2]))

def key(name, version):
    return f"{name}@{version}"

ours, theirs = defaultdict(set), defaultdict(set)
for p in bulwark["packages"]:
    ours[p["type"]].add(key(p["name"], p["version"]))
for a in syft["artifacts"]:
    theirs[a["type"]].add(key(a["name"], a["version"]))

status = 0
print(f"{'type':<14}{'bulwark':>9}{'syft':>7}{'both':>7}")
for t in sorted(set(ours) | set(theirs)):
    both = ours[t] & theirs[t]
    print(f"{t:<14}{len(ours[t]):>9}{len(theirs[t]):>7}{len(both):>7}")
# Debian advisories are keyed by source package: compare those too.
our_src = {p["name"]: (p.get("source") or {}).get("name", "") + "@" + (p.get("source") or {}).get("version", "")
           for p in bulwark["packages"] if p["type"] == "deb"}
src_diff = 0
for a in syft["artifacts"]:
    if a["type"] != "deb":
        continue
    m = a.get("metadata") or {}
    theirs_src = (m.get("source") or a["name"]) + "@" + (m.get("sourceVersion") or a["version"])
    if a["name"] in our_src and our_src[a["name"]] != theirs_src:
        src_diff += 1
        print(f"  source differs  {a['name']}: bulwark {our_src[a['name']]}, syft {theirs_src}")
print(f"deb source packages compared: {len(our_src)}, differing: {src_diff}")
for t in sorted(set(ours) | set(theirs)):
    for k in sorted(ours[t] - theirs[t]):
        print(f"  only bulwark  {t:<12} {k}")
    for k in sorted(theirs[t] - ours[t]):
        print(f"  only syft     {t:<12} {k}")
PY
