#!/usr/bin/env bash
# Password sign-ins/s per core and peak memory under a flood of wrong passwords (security
# review M2), each against a baseline measured in the same run. Not part of CI. See
# bench/README.md.
#
#   bench/password.sh
#
# Knobs (environment): BENCH_DURATION_SECS (default 10), BENCH_CONCURRENCY (client threads,
# default 2 per core), BENCH_PORT (default 24533 and the next one), TESSERA_BIN (benchmark this
# binary instead of building one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z ${TESSERA_BIN:-} ]]; then
	echo "bench-password: cargo build --release -p tessera" >&2
	cargo build --release -p tessera
	TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
	export TESSERA_BIN=$TARGET_DIR/release/tessera
fi
exec python3 bench/password.py
