#!/usr/bin/env bash
# The one test command: everything CI checks, in the order CI checks it.
#
#   scripts/test.sh
#
# 1. scripts/test-deps.sh, if present (hook for extra installs: npm packages, a browser, ...)
# 2. scripts/postgres.sh: a local PostgreSQL for the tests; exports TESSERA_TEST_POSTGRES_DSN
# 3. cargo fmt --check, cargo clippy -D warnings, the `tessera` binary without its default
#    `demo` feature (cargo check), then the whole test suite (cargo-nextest when installed,
#    cargo test otherwise).
# 4. the reliability suite's short form (reliability/, docs/reliability.md): the real binary
#    killed, starved of its database and raced, about a minute.
#
# Honours CARGO_TARGET_DIR (cargo reads it itself). With CI set, nextest uses its `ci` profile
# unless NEXTEST_PROFILE says otherwise.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ -f scripts/test-deps.sh ]]; then
	step "scripts/test-deps.sh"
	bash scripts/test-deps.sh
fi

step "scripts/postgres.sh"
pg_out=$(bash scripts/postgres.sh)
dsn=$(sed -n 's/^TESSERA_TEST_POSTGRES_DSN=//p' <<<"$pg_out" | tail -n 1)
if [[ -z $dsn ]]; then
	echo "scripts/postgres.sh printed no TESSERA_TEST_POSTGRES_DSN line" >&2
	exit 1
fi
export TESSERA_TEST_POSTGRES_DSN=$dsn
echo "TESSERA_TEST_POSTGRES_DSN=$TESSERA_TEST_POSTGRES_DSN" >&2

if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
	echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR" >&2
fi

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The production build: `tessera` without its default `demo` feature links no emulators. Checked
# here so the cfg(feature = "demo") seams cannot rot unnoticed.
step "cargo check -p tessera --no-default-features"
cargo check -p tessera --no-default-features

if cargo nextest --version >/dev/null 2>&1; then
	if [[ -n ${CI:-} && -z ${NEXTEST_PROFILE:-} ]]; then
		export NEXTEST_PROFILE=ci
	fi
	step "cargo nextest run --workspace --no-fail-fast (profile ${NEXTEST_PROFILE:-default})"
	cargo nextest run --workspace --no-fail-fast
else
	step "cargo test --workspace (cargo-nextest not installed)"
	cargo test --workspace --no-fail-fast
fi

step "reliability suite, short form (docs/reliability.md)"; cargo build -q -p tessera && cargo run -q -p tessera-reliability -- short
