#!/usr/bin/env bash
# Mapper evaluation benchmark: one command, not part of CI. See bench/README.md.
#
#   bench/mapper.sh
#
# Measures evaluations per second of seed 004's GitHub mapper (bench/mapper/github.jsonnet on
# bench/mapper/claims.json), side by side in the same run:
#   - tessera: through the real MapperPool (2 sandboxed worker processes of the release binary)
#   - tessera in-process: the same evaluation without process isolation (2 threads), for reference
#   - go-jsonnet: the `gojsonnet` PyPI package (the engine Kratos embeds), 2 processes
# Target: tessera pool >= 10x go-jsonnet.
#
# Knobs (environment): BENCH_DURATION (each measurement, default 5s), BENCH_ROUNDS (alternating
# rounds, default 2), TESSERA_BIN (benchmark this binary instead of building one).
#
# Exit status: 0 when the target is met, 2 when it is missed, 1 when something could not be
# measured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-2}
VENV=bench/.venv
PROCESSES=2

log() { printf 'bench-mapper: %s\n' "$*" >&2; }
die() {
	printf 'bench-mapper: error: %s\n' "$*" >&2
	exit 1
}

seconds() {
	python3 - "$1" <<'PY'
import re, sys
m = re.fullmatch(r"([0-9.]+)(ms|s|m)?", sys.argv[1].strip())
if not m:
    sys.exit(f"BENCH_DURATION `{sys.argv[1]}`: expected e.g. 5s, 500ms or 1m")
n, unit = float(m.group(1)), m.group(2) or "s"
print(n / 1000 if unit == "ms" else n * 60 if unit == "m" else n)
PY
}

# The go-jsonnet side: a venv of its own, created and filled once.
ensure_gojsonnet() {
	command -v python3 >/dev/null || die "python3 is needed for the go-jsonnet side (apt-get install python3 python3-venv)"
	if [[ ! -x $VENV/bin/python ]]; then
		log "creating $VENV"
		python3 -m venv "$VENV" || die "cannot create a venv (apt-get install python3-venv)"
	fi
	if ! "$VENV/bin/python" -c 'import _gojsonnet' 2>/dev/null; then
		log "installing gojsonnet into $VENV"
		"$VENV/bin/pip" install --quiet gojsonnet >&2 || die "pip install gojsonnet failed"
	fi
}

# value KEY OUTPUT: the N of a `KEY=N` line.
value() {
	awk -F= -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' <<<"$2" ||
		die "no $1 in: $2"
}

# --- main ---------------------------------------------------------------------------------------

SECONDS_EACH=$(seconds "$DURATION") || exit 1
ensure_gojsonnet

if [[ -n ${TESSERA_BIN:-} ]]; then
	log "cargo build --release -p tessera-bench-mapper (TESSERA_BIN=$TESSERA_BIN)"
	cargo build --release -p tessera-bench-mapper
else
	log "cargo build --release -p tessera -p tessera-bench-mapper"
	cargo build --release -p tessera -p tessera-bench-mapper
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
TESSERA=$(realpath -m "${TESSERA_BIN:-$TARGET_DIR/release/tessera}")
BENCH=$TARGET_DIR/release/tessera-bench-mapper
[[ -x $TESSERA ]] || die "no tessera binary at $TESSERA"
[[ -x $BENCH ]] || die "no benchmark binary at $BENCH"

# Alternate the sides so that drift during the run (throttling, a noisy neighbour) hits both.
pool=() inproc=() go=()
for round in $(seq "$ROUNDS"); do
	log "round $round/$ROUNDS: tessera ($DURATION pool, $DURATION in-process)"
	out=$(BENCH_DURATION=$DURATION "$BENCH" "$TESSERA") || die "the tessera benchmark failed"
	pool+=("$(value pool_evals_per_sec "$out")")
	inproc+=("$(value inprocess_evals_per_sec "$out")")
	log "round $round/$ROUNDS: go-jsonnet ($DURATION, $PROCESSES processes)"
	out=$("$VENV/bin/python" bench/mapper_gojsonnet.py bench/mapper/github.jsonnet \
		bench/mapper/claims.json bench/mapper/expected.json "$SECONDS_EACH" "$PROCESSES") ||
		die "the go-jsonnet benchmark failed"
	go+=("$(value evals_per_sec "$out")")
done

# --- report -------------------------------------------------------------------------------------

awk -v pool="${pool[*]}" -v inproc="${inproc[*]}" -v go="${go[*]}" -v dur="$DURATION" '
function mean(list,   n, a, i, s) { n = split(list, a, " "); for (i = 1; i <= n; i++) s += a[i]; return s / n }
BEGIN {
	p = mean(pool); i = mean(inproc); g = mean(go)
	printf "\n"
	printf "seed 004 GitHub mapper, %s per measurement, %d round(s) alternating; mean evaluations/s\n", dur, split(pool, x, " ")
	printf "  tessera pool (2 sandboxed workers)  %10.0f evals/s  (%s)\n", p, pool
	printf "  tessera in-process (2 threads)      %10.0f evals/s  (%s)\n", i, inproc
	printf "  go-jsonnet (gojsonnet, 2 processes) %10.0f evals/s  (%s)\n", g, go
	printf "\n"
	printf "%-32s %8s %8s  %s\n", "metric", "value", "target", "result"
	ok = p / g >= 10
	printf "%-32s %7.1fx %8s  %s\n", "pool / go-jsonnet", p / g, ">= 10x", ok ? "ok" : "MISSED"
	printf "%-32s %7.1fx %8s\n", "in-process / go-jsonnet (info)", i / g, "-"
	printf "%-32s %7.2fx %8s\n", "pool / in-process (info)", p / i, "-"
	exit ok ? 0 : 2
}'
