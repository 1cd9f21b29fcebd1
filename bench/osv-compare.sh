#!/usr/bin/env bash
# osv-compare.sh — compare bulwark's findings with osv-scanner's on the same
# image and the same OSV data, per (package, vulnerability), and time both.
#
#   bench/osv-compare.sh [IMAGE.tar] [OSV_DIR]
#
# OSV_DIR holds <Ecosystem>/all.zip (default ../shared/data/osv). osv-scanner
# v2.5.0 runs offline on the same zips (its local-db layout is
# DIR/osv-scalibr/<Ecosystem>/all.zip). Peers live outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR="${BULWARK_PEERS_DIR:-$HOME/.cache/bulwark-peers}"
OUT="${BULWARK_BENCH_DIR:-/tmp/bulwark-bench}"
IMAGE="${1:-$OUT/image.tar}"
OSV_DIR="${2:-../shared/data/osv}"
RUNS="${RUNS:-5}"

[ -d "$OSV_DIR" ] || { echo "no OSV data at $OSV_DIR" >&2; exit 2; }
[ -f "$IMAGE" ] || go run ./bench/mkimage -out "$OUT" >/dev/null
if [ ! -x "$PEERS_DIR/bin/osv-scanner" ]; then
	GOBIN="$PEERS_DIR/bin" GOTOOLCHAIN=local go install github.com/google/osv-scanner/v2/cmd/osv-scanner@v2.5.0
fi
go build -trimpath -o "$OUT/bulwark" ./cmd/bulwark

# the same zips for both tools
LOCALDB="$OUT/osv-localdb"
rm -rf "$LOCALDB" && mkdir -p "$LOCALDB/osv-scalibr"
zips=()
for z in "$OSV_DIR"/*/all.zip; do
	eco=$(basename "$(dirname "$z")")
	mkdir -p "$LOCALDB/osv-scalibr/$eco" && cp "$z" "$LOCALDB/osv-scalibr/$eco/all.zip"
	zips+=("$z")
done
DB="$OUT/osv.db"
rm -f "$DB"*
"$OUT/bulwark" db import --db "$DB" "${zips[@]}" >&2

"$OUT/bulwark" scan "$IMAGE" --db "$DB" -q -f json --cache-dir "$OUT/cache" >"$OUT/bulwark-scan.json"
"$PEERS_DIR/bin/osv-scanner" scan image --archive --offline --local-db-path "$LOCALDB" --format json "$IMAGE" >"$OUT/osv-scanner.json" 2>"$OUT/osv-scanner.err" || true

python3 - "$OUT/bulwark-scan.json" "$OUT/osv-scanner.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
theirs = json.load(open(sys.argv[2]))

def ver(v):
    # osv-scanner writes Go module versions without the "v"
    return v[1:] if v[:1] == "v" and v[1:2].isdigit() else v

# bulwark: (package, version) -> list of id sets
b = {}
for f in ours["findings"]:
    # osv-scanner names Debian packages by their source package
    key = (f["package"].get("source") or f["package"]["name"], ver(f["package"]["version"]))
    b.setdefault(key, []).append(set([f["id"]] + f.get("aliases", []) + f.get("advisories", [])))
# osv-scanner: one group of ids per vulnerability per package
o = {}
for res in theirs.get("results", []):
    for p in res.get("packages", []):
        pkg = p["package"]
        key = (pkg["name"], ver(pkg.get("version", "")))
        groups = p.get("groups") or [{"ids": [v["id"]]} for v in p.get("vulnerabilities", [])]
        vulns = {v["id"]: v for v in p.get("vulnerabilities", [])}
        for g in groups:
            ids = set(g.get("ids", []))
            for i in list(ids):
                ids |= set(vulns.get(i, {}).get("aliases", []) or [])
            o.setdefault(key, []).append(ids)

def name(ids):
    cves = sorted(i for i in ids if i.startswith("CVE-"))
    return cves[0] if cves else sorted(ids)[0]

both = only_b = only_o = 0
lines = []
for key in sorted(set(b) | set(o)):
    for ids in b.get(key, []):
        if any(ids & other for other in o.get(key, [])):
            both += 1
        else:
            only_b += 1
            lines.append(f"  only bulwark      {key[0]}@{key[1]} {name(ids)}")
    for ids in o.get(key, []):
        if not any(ids & other for other in b.get(key, [])):
            only_o += 1
            lines.append(f"  only osv-scanner  {key[0]}@{key[1]} {name(ids)}")
print(f"(package, vulnerability) pairs: both {both}, only bulwark {only_b}, only osv-scanner {only_o}")
print("\n".join(lines))
PY

# timing: warm database, same image, median of RUNS
measure() {
	local name=$1; shift
	local times=()
	for _ in $(seq "$RUNS"); do
		/usr/bin/time -f '%e' -o "$OUT/time.txt" "$@" >/dev/null 2>&1 || true
		times+=("$(tail -1 "$OUT/time.txt")")
	done
	printf '%s %s\n' "$name" "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
}
{
	measure bulwark "$OUT/bulwark" scan "$IMAGE" --db "$DB" -q -f json --cache-dir "$OUT/cache"
	measure osv-scanner "$PEERS_DIR/bin/osv-scanner" scan image --archive --offline --local-db-path "$LOCALDB" --format json "$IMAGE"
	[ -x "$PEERS_DIR/bin/trivy" ] && measure trivy-sbom-only "$PEERS_DIR/bin/trivy" image --input "$IMAGE" --cache-backend memory --offline-scan --skip-db-update --skip-java-db-update -q -f cyclonedx
} | tee "$OUT/scan-speed.txt"
awk '{t[$1]=$2} END {if (t["bulwark"]>0) printf "speed-up: %.1fx vs osv-scanner\n", t["osv-scanner"]/t["bulwark"]}' "$OUT/scan-speed.txt"
echo "database: $(du -h "$DB" | cut -f1) for $(ls "$OSV_DIR")" 
