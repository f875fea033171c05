#!/usr/bin/env bash
# Installs what the tests need besides Rust: the third-party peers they run against.
#
#   bash scripts/test-deps.sh
#
# scripts/test.sh runs it first. It is idempotent and returns in well under a second when
# everything is already in place, so it is safe to run before every test run. It needs only the
# package registries (npm here), never a download of its own.
#
# One function per group of dependencies; a later group (a browser for playwright-core, the
# openid-client RP, …) gets its own function and a line in main.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# oidc-provider 9 runs on Node 20 from 20.18 on (it needs crypto.hash and URL.parse) and
# prints a harmless "Unsupported runtime" warning there; it asks for 22 LTS.
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=18

log() { printf 'test-deps: %s\n' "$*" >&2; }
die() {
	printf 'test-deps: error: %s\n' "$*" >&2
	exit 1
}

require_node() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		die "node and npm are required for the test peers (peers/).
    Install them with: apt-get install nodejs npm   (Node ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} or newer)"
	fi
	local version major minor
	version=$(node --version) # v20.19.2
	IFS=. read -r major minor _ <<<"${version#v}"
	if ((major < NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor < NODE_MIN_MINOR))); then
		die "node ${version} is too old for the test peers; need v${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} or newer.
    Install a newer one with: apt-get install nodejs npm   (from a release that ships Node ${NODE_MIN_MAJOR}+)"
	fi
}

# The npm packages in peers/ (oidc-provider, and what later issues add): `npm ci` exactly as
# locked, redone only when package-lock.json is newer than the stamp of the last install.
install_npm_peers() {
	local dir=peers stamp=peers/node_modules/.tessera-installed
	if [[ -f $stamp && ! $dir/package-lock.json -nt $stamp ]]; then
		return 0
	fi
	require_node
	log "npm ci in ${dir}/"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
		die "npm ci failed in ${dir}/ (is the npm registry reachable?)"
	touch "$stamp"
}

# Installs Debian packages (as root, or through sudo), or says exactly what to install.
apt_install() {
	command -v apt-get >/dev/null 2>&1 ||
		die "the tests need these Debian packages: $*; install them with your package manager"
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 || die "installing $* needs root: run apt-get install $*"
		sudo=(sudo)
	fi
	log "apt-get install $*"
	"${sudo[@]}" apt-get update -qq || die "apt-get update failed (is the Debian mirror reachable?)"
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
		die "apt-get install $* failed"
}

# The hosted UI's browser suite (crates/tessera/tests/ui_browser.rs): Debian's chromium, plus
# fonts with Chinese glyphs so zh-CN pages and screenshots show text rather than boxes.
install_chromium() {
	if command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; then
		return 0
	fi
	apt_install chromium fonts-noto-cjk
}

# playwright-core (exact version, locked) in its own npm dir, peers/browser/, so the browser
# suite's dependencies stay apart from peers/package.json.
install_browser_driver() {
	local dir=peers/browser stamp=peers/browser/node_modules/.tessera-installed
	if [[ -f $stamp && ! $dir/package-lock.json -nt $stamp ]]; then
		return 0
	fi
	require_node
	log "npm ci in ${dir}/"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
		die "npm ci failed in ${dir}/ (is the npm registry reachable?)"
	touch "$stamp"
}

# The Python peers: the OIDC client (Authlib) the OpenID Provider's tests run as a relying party,
# and Ory's own Kratos SDK (ory-kratos-client, with its strict pydantic models) that
# peers/ory_sdk.py drives against Tessera's Kratos API. A venv in peers/.venv with
# peers/requirements.txt exactly (every dependency pinned), redone only when that file is newer
# than the stamp of the last install.
install_python_peers() {
	local venv=peers/.venv stamp=peers/.venv/.tessera-installed
	if [[ -f $stamp && ! peers/requirements.txt -nt $stamp ]]; then
		return 0
	fi
	command -v python3 >/dev/null 2>&1 ||
		die "python3 is required for the Python peers (Authlib, ory-kratos-client). Install it with: apt-get install python3 python3-venv"
	if [[ ! -x $venv/bin/python ]]; then
		log "python3 -m venv ${venv}"
		if ! python3 -m venv "$venv" 2>/dev/null; then
			# Debian ships venv's pip bootstrap separately.
			rm -rf "$venv"
			apt_install python3-venv
			python3 -m venv "$venv" || die "cannot create ${venv} even with python3-venv installed"
		fi
	fi
	log "pip install -r peers/requirements.txt into ${venv}/"
	# `python -m pip`, not bin/pip: a venv copied from another checkout keeps that checkout's
	# path in bin/pip's shebang and would install there.
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r peers/requirements.txt ||
		die "pip install failed (is PyPI reachable?)"
	touch "$stamp"
}

main() {
	install_npm_peers
	install_chromium
	install_browser_driver
	install_python_peers
}

main "$@"
