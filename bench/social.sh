#!/usr/bin/env bash
# Tessera social sign-in benchmark: one command, not part of CI. See bench/README.md.
#
#   bench/social.sh
#
# Measures complete browser social sign-ins per second (flow → provider button → upstream →
# callback → session cookie) against `tessera serve` (release build) on SQLite, with an
# in-process fake OIDC upstream (ES256). Target: >= 1,000 sign-ins/s with p99 < 20 ms.
#
# Knobs (environment): BENCH_DURATION (each measured run, default 10s), BENCH_CONCURRENCY (client
# tasks, default 16), BENCH_WARMUP (default 1s), BENCH_SIGNUPS (0 skips the sign-up run),
# BENCH_CACHE_TTL (session.cache_ttl, default: the server's), BENCH_WORKDIR (default
# /tmp/tessera-bench-social), TESSERA_BIN (benchmark this binary instead of building one).
#
# Exit status: 0 when the runs were measured (the verdict is in the output, MISSED or ok),
# 1 when something could not be measured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'bench-social: %s\n' "$*" >&2; }

if [[ -n ${TESSERA_BIN:-} ]]; then
	log "cargo build --release -p tessera-bench-social (TESSERA_BIN=$TESSERA_BIN)"
	cargo build --release -p tessera-bench-social
else
	log "cargo build --release -p tessera -p tessera-bench-social"
	cargo build --release -p tessera -p tessera-bench-social
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BENCH=$TARGET_DIR/release/tessera-bench-social
[[ -x $BENCH ]] || { log "error: no benchmark binary at $BENCH"; exit 1; }
if [[ -z ${TESSERA_BIN:-} ]]; then
	export TESSERA_BIN=$TARGET_DIR/release/tessera
fi

# The benchmark starts and stops the server itself (SIGTERM, also on errors).
exec "$BENCH"
