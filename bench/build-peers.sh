#!/usr/bin/env bash
# build-peers.sh — build the peer tools Bulwark is benchmarked against (syft, trivy,
# cosign) from the Go module proxy into a scratch directory OUTSIDE this repository.
#
#   bench/build-peers.sh [syft|trivy|cosign ...]     (default: all three)
#
# Layout (BULWARK_PEERS_DIR defaults to $HOME/.cache/bulwark-peers):
#   $BULWARK_PEERS_DIR/src/<tool>/go.mod   scratch wrapper module (require + replaces)
#   $BULWARK_PEERS_DIR/bin/<tool>          built binary
#
# Idempotent: a binary already present in bin/ is not rebuilt (delete it, or set
# BULWARK_PEERS_REBUILD=1, to force). Wrapper modules are (re)written only when their
# seed (require/replace lines) changed. Progress goes to stderr; nothing is written
# inside the repository.
#
# Why wrappers: the proxy refuses (HTTP 403 "not available") a few module versions that
# the tools pin, so `go install tool@version` fails. Each refused module@version is
# replaced by the nearest version the proxy serves. Resolution uses
# `go list -mod=mod -deps` (not `go mod tidy`, which also wants modules behind build
# tags that are not built).
set -euo pipefail

PEERS_DIR="${BULWARK_PEERS_DIR:-$HOME/.cache/bulwark-peers}"
REBUILD="${BULWARK_PEERS_REBUILD:-0}"

export GOTOOLCHAIN=local
export CGO_ENABLED=0

log() { printf 'build-peers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null 2>&1 || {
	[ -x /usr/local/go/bin/go ] && PATH="/usr/local/go/bin:$PATH"
}
command -v go >/dev/null 2>&1 || die "go not found in PATH"

# Refuse to build inside the repository.
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd "$script_dir/.." && pwd -P)"
PEERS_DIR="$(realpath -m -- "$PEERS_DIR")" # canonical, without creating it yet
case "$PEERS_DIR/" in
"$repo_root"/*) die "BULWARK_PEERS_DIR ($PEERS_DIR) is inside the repository ($repo_root)" ;;
esac
mkdir -p "$PEERS_DIR/bin" "$PEERS_DIR/src" "$PEERS_DIR/logs"

# ---- tool definitions --------------------------------------------------------------
# Each tool: module, version, main package, build tags, ldflags, extra env, replaces.

syft_module=github.com/anchore/syft
syft_version=v1.57.0
syft_pkg=github.com/anchore/syft/cmd/syft
# Upstream releases also build with -tags containers_image_openpgp,exclude_graphdriver_btrfs,
# which enables the podman containers-storage image source. That tag pulls in
# go.podman.io/storage -> github.com/varlink/go v0.4.1-0.20261015173642-c935be0c53f7, which the
# proxy refuses, and the only served release (v0.4.0) lacks Service.ServeConn and
# Call.ReplyWithFDs, so it does not compile. Without the tag the containers-storage source is
# a stub; docker-archive, OCI archive/dir and directory scans are unaffected.
syft_tags=""
syft_ldflags="-s -w -X main.version=${syft_version#v}"
syft_env=""
syft_replaces=(
	# v29.9.2+incompatible: 403 from the proxy; v29.9.3 is the nearest served version.
	"github.com/docker/cli => github.com/docker/cli v29.9.3+incompatible"
	# v2.8.0 (and v2.7.1..v2.9.x): 403 from the proxy; v2.7.0 is the nearest served version.
	"github.com/github/go-spdx/v2 => github.com/github/go-spdx/v2 v2.7.0"
)

trivy_module=github.com/aquasecurity/trivy
trivy_version=v0.72.0
trivy_pkg=github.com/aquasecurity/trivy/cmd/trivy
trivy_tags=""
trivy_ldflags="-s -w -X github.com/aquasecurity/trivy/pkg/version/app.ver=${trivy_version#v}"
trivy_env="GOEXPERIMENT=jsonv2"
trivy_replaces=()

cosign_module=github.com/sigstore/cosign/v2
cosign_version=v2.6.5
cosign_pkg=github.com/sigstore/cosign/v2/cmd/cosign
cosign_tags=""
cosign_ldflags="-s -w -buildid= -X sigs.k8s.io/release-utils/version.gitVersion=${cosign_version}"
cosign_env=""
cosign_replaces=()

ALL_TOOLS=(syft trivy cosign)

# ---- helpers -----------------------------------------------------------------------

# wrapper_seed TOOL: the go.mod the wrapper starts from.
wrapper_seed() {
	local t=$1 module version r
	eval "module=\$${t}_module version=\$${t}_version"
	local -n reps="${t}_replaces"
	printf 'module bulwark-peers/%s\n\ngo 1.26\n\nrequire %s %s\n' "$t" "$module" "$version"
	for r in "${reps[@]}"; do
		printf '\nreplace %s\n' "$r"
	done
}

# write_wrapper TOOL: (re)create src/TOOL/go.mod when its seed changed.
write_wrapper() {
	local t=$1 dir="$PEERS_DIR/src/$1" seed
	mkdir -p "$dir"
	seed="$(wrapper_seed "$t")"
	# `go list -mod=mod` adds require lines to go.mod but never touches replace lines, so a
	# wrapper is current when its seed is unchanged and its replace lines still match it.
	if [ -f "$dir/go.mod" ] && [ -f "$dir/.seed" ] && [ "$(cat "$dir/.seed")" = "$seed" ] &&
		[ "$(grep '^replace ' "$dir/go.mod" || true)" = "$(grep '^replace ' <<<"$seed" || true)" ]; then
		log "$t: wrapper module up to date ($dir)"
		return
	fi
	log "$t: writing wrapper module $dir/go.mod"
	rm -f "$dir/go.sum"
	printf '%s\n' "$seed" >"$dir/go.mod"
	printf '%s' "$seed" >"$dir/.seed"
}

# build_tool TOOL
build_tool() {
	local t=$1 version pkg tags ldflags envs
	eval "version=\$${t}_version pkg=\$${t}_pkg tags=\$${t}_tags ldflags=\$${t}_ldflags envs=\$${t}_env"
	local dir="$PEERS_DIR/src/$t" bin="$PEERS_DIR/bin/$t" logf="$PEERS_DIR/logs/$t.log"
	local -a tagflag=()
	[ -n "$tags" ] && tagflag=(-tags "$tags")

	write_wrapper "$t"

	if [ -x "$bin" ] && [ "$REBUILD" != 1 ]; then
		log "$t: $bin already present, skipping build"
		return
	fi

	: >"$logf"
	local start=$SECONDS
	log "$t: resolving $pkg@$version (go list -mod=mod -deps; log: $logf)"
	if ! (cd "$dir" && env $envs go list -mod=mod -deps "${tagflag[@]}" "$pkg" >/dev/null 2>>"$logf"); then
		grep -E '403|not available|error' "$logf" | sort -u | head -20 >&2 || true
		die "$t: dependency resolution failed; for each refused module@version add a replace to ${t}_replaces (see $logf)"
	fi
	log "$t: resolved in $((SECONDS - start))s; building (this takes several minutes)"
	local bstart=$SECONDS
	if ! (cd "$dir" && env $envs go build -mod=mod -trimpath "${tagflag[@]}" -ldflags "$ldflags" \
		-o "$bin.tmp" "$pkg" >>"$logf" 2>&1); then
		rm -f "$bin.tmp"
		tail -20 "$logf" >&2
		die "$t: build failed (see $logf)"
	fi
	mv -f "$bin.tmp" "$bin"
	log "$t: built $bin in $((SECONDS - bstart))s (total $((SECONDS - start))s)"
}

# ---- main --------------------------------------------------------------------------

tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=("${ALL_TOOLS[@]}")
for t in "${tools[@]}"; do
	case " ${ALL_TOOLS[*]} " in
	*" $t "*) ;;
	*) die "unknown tool '$t' (known: ${ALL_TOOLS[*]})" ;;
	esac
done

log "peers dir: $PEERS_DIR ($(go version))"
for t in "${tools[@]}"; do
	build_tool "$t"
done

# Smoke check: every requested binary runs and reports its version.
for t in "${tools[@]}"; do
	bin="$PEERS_DIR/bin/$t"
	case $t in
	syft) v=$(SYFT_CHECK_FOR_APP_UPDATE=false "$bin" version 2>&1 | awk '/^Version:/ {print $2; exit}') ;;
	trivy) v=$("$bin" --version 2>&1 | awk '/^Version:/ {print $2; exit}') ;;
	cosign) v=$("$bin" version 2>&1 | awk '/^GitVersion:/ {print $2; exit}') ;;
	esac
	[ -n "${v:-}" ] || die "$t: $bin does not report a version"
	log "$t: ok, $bin reports version $v"
done
log "done"
