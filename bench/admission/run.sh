#!/usr/bin/env bash
# Load test of `bulwark admission serve` with a cached certified digest:
# 500 AdmissionReviews/s for 60 s by default. Usage:
#   bash bench/admission/run.sh [-rate 500] [-duration 60s] [-workers 64]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(mktemp -d)/bulwark"
go build -o "$bin" ./cmd/bulwark
go run ./bench/admission -bulwark "$bin" "$@"
