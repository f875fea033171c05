#!/usr/bin/env bash
# Tessera OpenID Provider benchmark: one command, not part of CI. See bench/README.md.
#
#   bench/op.sh
#
# Client-credentials tokens/s of `tessera serve` (release build, SQLite) against the
# `oidc-provider` npm package (peers/cc-provider.mjs) on the same machine, in the same run,
# alternating; target: Tessera >= 5x. Then Tessera's authorization-code exchanges/s and whole code
# flows/s. Loopback only; every process it starts is stopped when it ends.
#
# Knobs (environment): BENCH_DURATION_SECS (each measured run, default 10), BENCH_CONCURRENCY
# (client tasks, default 32), BENCH_CODES (codes issued then exchanged, default 5000),
# BENCH_WORKDIR (default /tmp/tessera-bench-op), BENCH_SIGNING_ALG (RS256 or ES256, default RS256),
# TESSERA_BIN (benchmark this binary instead of
# building one).
#
# Exit status: 0 when measured (the verdict, ok or MISSED, is in the output), 1 when something
# could not be measured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'bench-op: %s\n' "$*" >&2; }

bash scripts/test-deps.sh
if [[ -n ${TESSERA_BIN:-} ]]; then
	log "cargo build --release -p tessera-bench-op (TESSERA_BIN=$TESSERA_BIN)"
	cargo build --release -p tessera-bench-op
else
	log "cargo build --release -p tessera -p tessera-bench-op"
	cargo build --release -p tessera -p tessera-bench-op
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BENCH=$TARGET_DIR/release/tessera-bench-op
[[ -x $BENCH ]] || { log "error: no benchmark binary at $BENCH"; exit 1; }
if [[ -z ${TESSERA_BIN:-} ]]; then
	export TESSERA_BIN=$TARGET_DIR/release/tessera
fi
export BENCH_PEERS=$PWD/peers
exec "$BENCH"
