#!/usr/bin/env bash
# `bulwark fuzz` on the planted-fault server: requests/s and findings.
#   bash bench/fuzz/run.sh [-requests 5000] [-runs 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(mktemp -d)/bulwark"
go build -o "$bin" ./cmd/bulwark
go run ./bench/fuzz -bulwark "$bin" "$@"
