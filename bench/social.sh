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
# /tmp/tessera-bench-social), TESSERA_BIN (benchmark this binary instead of building one),
# BENCH_PIN (1, the default with 2 or more cores: the server on CPU 0, the client and the
# upstream on the others, with taskset; 0: everything shares every core).
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

# Pinning: the design target is about the server's capacity, so by default the server gets
# CPU 0 to itself and the client and the fake upstream (this benchmark's process) the others.
CORES=$(nproc)
PIN=${BENCH_PIN:-1}
if [[ $PIN == 1 ]] && ((CORES >= 2)) && command -v taskset >/dev/null; then
	export BENCH_SERVER_CPUS=0
	export BENCH_CLIENT_CPUS="1-$((CORES - 1))"
	log "pinned: server on CPU $BENCH_SERVER_CPUS, client and upstream on CPU(s) $BENCH_CLIENT_CPUS (BENCH_PIN=0 to share)"
	# The benchmark starts and stops the server itself (SIGTERM, also on errors).
	exec taskset -c "$BENCH_CLIENT_CPUS" "$BENCH"
fi
if [[ $PIN == 1 ]]; then
	log "not pinned: $CORES core(s) or no taskset"
fi
unset BENCH_SERVER_CPUS BENCH_CLIENT_CPUS
# The benchmark starts and stops the server itself (SIGTERM, also on errors).
exec "$BENCH"
