#!/usr/bin/env bash
# Verifications per second per TEE kind with warm collateral, and the time
# from new collateral to revoked instances for 10,000 instances.
# docs/confidential.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
go test ./bench/attest -run '^$' -bench 'Verify' -benchtime "${BENCHTIME:-3s}" -count "${COUNT:-3}"
go test ./bench/attest -run '^$' -bench 'Revoke10k' -benchtime "${REVOKE_RUNS:-5}x" -count "${COUNT:-3}"
