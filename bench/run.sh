#!/usr/bin/env bash
# Tessera benchmarks: one command, not part of CI. See bench/README.md.
#
#   bench/run.sh
#
# Measures, for `tessera serve --dev` on SQLite:
#   - start-to-ready: spawn until GET /health/ready answers 200          target < 100 ms
#   - idle RSS about 1 s after ready (VmRSS)                              target <= 20 MB
#   - GET /sessions/whoami throughput relative to a bare axum hello-world  target >= 0.55
#
# Knobs (environment): BENCH_DURATION (wrk duration per run, default 10s), TESSERA_BIN (benchmark
# this binary instead of building target/release/tessera).
#
# Exit status: 0 when every target is met, 2 when a measurement missed its target, 1 on error.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PUBLIC_PORT=24433
ADMIN_PORT=24434
BASELINE_PORT=18080
WORKDIR=/tmp/tessera-bench
DURATION=${BENCH_DURATION:-10s}
EMAIL=bench@example.com
PASSWORD='correct horse battery staple'
PUBLIC_URL="http://127.0.0.1:$PUBLIC_PORT"
BASELINE_URL="http://127.0.0.1:$BASELINE_PORT/"
WHOAMI_URL="$PUBLIC_URL/sessions/whoami"

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}

# --- tools --------------------------------------------------------------------------------------

ensure_tools() {
	local missing=()
	command -v wrk >/dev/null || missing+=(wrk)
	command -v curl >/dev/null || missing+=(curl)
	command -v python3 >/dev/null || missing+=(python3)
	((${#missing[@]} == 0)) && return
	log "installing ${missing[*]}"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]} by hand"
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
}

# --- processes ----------------------------------------------------------------------------------

PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# spawn_until_ready URL LOGFILE CMD...
# Spawns CMD (environment inherited, cwd unchanged, output to LOGFILE), polls GET URL every 2 ms
# until it answers 200, prints "PID MILLISECONDS" (spawn to first 200). Fails, and kills the
# process, if it exits first or is not ready within 30 s.
spawn_until_ready() {
	python3 - "$@" <<'PY'
import http.client, subprocess, sys, time, urllib.parse

url, logfile, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
u = urllib.parse.urlsplit(url)
path = u.path or "/"

def ready():
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()

log = open(logfile, "wb")
t0 = time.perf_counter()
proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
deadline = t0 + 30
while True:
    if ready():
        ms = (time.perf_counter() - t0) * 1000
        break
    code = proc.poll()
    if code is not None:
        sys.exit(f"{cmd[0]} exited with status {code} before {url} answered 200; see {logfile}")
    if time.perf_counter() > deadline:
        proc.kill()
        sys.exit(f"{url} did not answer 200 within 30 s of starting {cmd[0]}; see {logfile}")
    time.sleep(0.002)
print(proc.pid, f"{ms:.1f}")
PY
}

rss_mb() {
	awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null ||
		die "process $1 is gone"
}

# rss_split_mb PID: "ANON FILE" (RssAnon and RssFile, MB): the heap and stacks against the
# binary's own pages mapped from the page cache, which the kernel can drop and share.
rss_split_mb() {
	awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { printf "%.1f %.1f\n", a / 1024, f / 1024 }' \
		"/proc/$1/status" 2>/dev/null || die "process $1 is gone"
}

# --- Kratos API flows ---------------------------------------------------------------------------

# Prints a session token for EMAIL: registers (the registration hook `session` issues one); when
# the registration response has none, logs in.
session_token() {
	python3 - "$PUBLIC_URL" "$EMAIL" "$PASSWORD" <<'PY'
import json, sys, urllib.error, urllib.request

base, email, password = sys.argv[1:]

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Accept": "application/json", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except OSError as e:
        sys.exit(f"{method} {path}: {e}")
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return status, doc, raw.decode(errors="replace")[:2000]

def flow(kind):
    status, doc, raw = call("GET", f"/self-service/{kind}/api")
    if status != 200 or not isinstance(doc, dict) or "id" not in doc:
        sys.exit(f"GET /self-service/{kind}/api: expected 200 with a flow id, got {status}: {raw}")
    return doc["id"]

fid = flow("registration")
status, doc, raw = call("POST", f"/self-service/registration?flow={fid}", {
    "method": "password", "traits": {"email": email}, "password": password})
if status != 200:
    sys.exit(f"POST /self-service/registration: expected 200, got {status}: {raw}")
token = doc.get("session_token") if isinstance(doc, dict) else None
if not token:
    print("bench: registration returned no session_token; logging in", file=sys.stderr)
    fid = flow("login")
    status, doc, raw = call("POST", f"/self-service/login?flow={fid}", {
        "method": "password", "identifier": email, "password": password})
    token = doc.get("session_token") if isinstance(doc, dict) else None
    if status != 200 or not token:
        sys.exit(f"POST /self-service/login: expected 200 with a session_token, got {status}: {raw}")
print(token)
PY
}

# --- wrk ----------------------------------------------------------------------------------------

# run_wrk NAME URL [HEADER]: prints requests/s; the full output is kept in $WORKDIR/wrk-NAME.txt.
run_wrk() {
	local name=$1 url=$2 out="$WORKDIR/wrk-$1.txt"
	local args=(-t2 -c32 -d"$DURATION")
	[[ -n ${3:-} ]] && args+=(-H "$3")
	log "wrk ${args[*]:0:3} $url ($name)"
	wrk "${args[@]}" "$url" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
	if grep -q 'Non-2xx or 3xx responses' "$out"; then
		die "$url answered errors under load ($name): $(grep 'Non-2xx' "$out"); see $out"
	fi
	grep -q 'Socket errors' "$out" && log "warning: $(grep 'Socket errors' "$out") ($name)"
	awk '/^Requests\/sec:/ { print $2; found = 1 } END { exit !found }' "$out" ||
		die "no Requests/sec in wrk output: $(cat "$out")"
}

# --- main ---------------------------------------------------------------------------------------

ensure_tools

if [[ -n ${TESSERA_BIN:-} ]]; then
	log "cargo build --release -p bench-baseline (TESSERA_BIN=$TESSERA_BIN)"
	cargo build --release -p bench-baseline
else
	log "cargo build --release -p tessera -p bench-baseline"
	cargo build --release -p tessera -p bench-baseline
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
TESSERA=$(realpath -m "${TESSERA_BIN:-$TARGET_DIR/release/tessera}")
BASELINE=$TARGET_DIR/release/bench-baseline
[[ -x $TESSERA ]] || die "no tessera binary at $TESSERA"
[[ -x $BASELINE ]] || die "no bench-baseline binary at $BASELINE"

for port in "$PUBLIC_PORT" "$ADMIN_PORT" "$BASELINE_PORT"; do
	port_in_use "$port" && die "127.0.0.1:$port is already in use; stop whatever listens there"
done

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"
cd "$WORKDIR"

# a. start-to-ready and idle RSS
log "starting $TESSERA serve --dev in $WORKDIR"
read -r TESSERA_PID READY_MS < <(
	DSN="sqlite://$WORKDIR/bench.db?mode=rwc" \
		SERVE_PUBLIC_PORT=$PUBLIC_PORT \
		SERVE_ADMIN_PORT=$ADMIN_PORT \
		SELFSERVICE_FLOWS_REGISTRATION_AFTER_PASSWORD_HOOKS='[{"hook":"session"}]' \
		spawn_until_ready "$PUBLIC_URL/health/ready" "$WORKDIR/tessera.log" "$TESSERA" serve --dev ||
		echo FAILED
)
[[ ${TESSERA_PID:-FAILED} != FAILED ]] || die "tessera did not become ready (log: $WORKDIR/tessera.log)"
PIDS+=("$TESSERA_PID")
log "tessera ready after $READY_MS ms (pid $TESSERA_PID)"
sleep 1
IDLE_RSS=$(rss_mb "$TESSERA_PID")
read -r IDLE_ANON IDLE_FILE < <(rss_split_mb "$TESSERA_PID")

# b. a session
TOKEN=$(session_token) || die "could not obtain a session token (log: $WORKDIR/tessera.log)"
code=$(curl -sS -o "$WORKDIR/whoami.json" -w '%{http_code}' -H "X-Session-Token: $TOKEN" "$WHOAMI_URL") ||
	die "GET $WHOAMI_URL failed"
[[ $code == 200 ]] || die "GET $WHOAMI_URL answered $code: $(head -c 2000 "$WORKDIR/whoami.json")"

# c. throughput against the baseline, alternating to spread drift over both
log "starting $BASELINE $BASELINE_PORT"
read -r BASELINE_PID _ < <(spawn_until_ready "$BASELINE_URL" "$WORKDIR/baseline.log" "$BASELINE" "$BASELINE_PORT" || echo FAILED)
[[ ${BASELINE_PID:-FAILED} != FAILED ]] || die "bench-baseline did not become ready (log: $WORKDIR/baseline.log)"
PIDS+=("$BASELINE_PID")

b1=$(run_wrk baseline-1 "$BASELINE_URL")
t1=$(run_wrk tessera-1 "$WHOAMI_URL" "X-Session-Token: $TOKEN")
b2=$(run_wrk baseline-2 "$BASELINE_URL")
t2=$(run_wrk tessera-2 "$WHOAMI_URL" "X-Session-Token: $TOKEN")
LOADED_RSS=$(rss_mb "$TESSERA_PID")
kill -0 "$TESSERA_PID" 2>/dev/null || die "tessera exited during the benchmark (log: $WORKDIR/tessera.log)"

# --- report -------------------------------------------------------------------------------------

awk -v b1="$b1" -v b2="$b2" -v t1="$t1" -v t2="$t2" -v ready="$READY_MS" \
	-v rss="$IDLE_RSS" -v loaded="$LOADED_RSS" -v dur="$DURATION" \
	-v anon="$IDLE_ANON" -v file="$IDLE_FILE" '
function verdict(ok) { if (!ok) missed = 1; return ok ? "ok" : "MISSED" }
BEGIN {
	b = (b1 + b2) / 2; t = (t1 + t2) / 2; ratio = t / b
	printf "\n"
	printf "wrk -t2 -c32 -d%s, 2 runs each, alternating; mean req/s\n", dur
	printf "  baseline  GET /                %10.0f req/s  (%.0f, %.0f)\n", b, b1, b2
	printf "  tessera   GET /sessions/whoami %10.0f req/s  (%.0f, %.0f)\n", t, t1, t2
	printf "\n"
	printf "%-28s %12s %10s  %s\n", "metric", "value", "target", "result"
	printf "%-28s %12.2f %10s  %s\n", "whoami / baseline req/s", ratio, ">= 0.55", verdict(ratio >= 0.55)
	printf "%-28s %9.1f MB %10s  %s\n", "idle RSS", rss, "<= 20 MB", verdict(rss <= 20)
	printf "%-28s %9.1f ms %10s  %s\n", "start-to-ready", ready, "< 100 ms", verdict(ready < 100)
	printf "%-28s %9.1f MB %10s  (heap and stacks %.1f MB, binary and libraries mapped %.1f MB)\n", "  idle RSS split (info)", anon + file, "-", anon, file
	printf "%-28s %9.1f MB %10s\n", "RSS after load (info)", loaded, "-"
	exit missed ? 2 : 0
}'
