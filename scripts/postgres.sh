#!/usr/bin/env bash
# Ensures a PostgreSQL server for the test suite: a project-owned cluster, not the system service.
#
#   scripts/postgres.sh [start]   install PostgreSQL if needed, init + start the cluster, print the DSN
#   scripts/postgres.sh stop      stop the cluster (the data dir is kept)
#   scripts/postgres.sh status    exit 0 if it runs, 3 if not
#
# Environment:
#   TESSERA_PG_DIR   data directory (default /tmp/tessera-pg)
#   TESSERA_PG_PORT  TCP port on 127.0.0.1 (default 54329)
#
# Idempotent: when the cluster already runs, `start` changes nothing. Diagnostics go to stderr;
# the only stdout line of `start` is
#   TESSERA_TEST_POSTGRES_DSN=postgres://tessera:tessera@127.0.0.1:<port>/postgres?sslmode=disable
# The cluster is tuned for tests (fsync=off etc.): never put data you care about in it.
set -euo pipefail

PGDIR=${TESSERA_PG_DIR:-/tmp/tessera-pg}
PORT=${TESSERA_PG_PORT:-54329}
ROLE=tessera
CMD=${1:-start}

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ $PORT =~ ^[0-9]+$ ]] || die "TESSERA_PG_PORT must be a number, got '$PORT'"
case $PGDIR in
/*) ;;
*) PGDIR="$PWD/$PGDIR" ;;
esac
PGDIR=${PGDIR%/}
LOGFILE="$PGDIR/server.log"

# Newest installed server binaries, e.g. /usr/lib/postgresql/15/bin.
find_bindir() {
	local postgres
	postgres=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sort -V | tail -n 1)
	[[ -n $postgres ]] && dirname "$postgres"
}

install_postgres() {
	log "PostgreSQL server not found; installing Debian's postgresql package"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || die "not root and no sudo: install the 'postgresql' package by hand"
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
}

# Runs a command as the OS user owning the cluster: `postgres` when we are root (the server
# refuses to run as root), the current user otherwise. Runs from / so that a cwd the postgres user
# cannot read does not cause warnings. fd 9 (the lock) is closed so the server does not inherit it.
if [[ $(id -u) -eq 0 ]]; then
	as_pg() { (cd / && runuser -u postgres -- "$@") 9>&-; }
else
	as_pg() { (cd / && "$@") 9>&-; }
fi

# A postmaster killed without a clean shutdown leaves postmaster.pid (and the socket lock) behind. When its process is
# a zombie (a container whose PID 1 does not reap), pg_ctl and the server still see it as alive;
# it is dead, so remove the stale pid file.
clear_zombie_pidfile() {
	local pid state
	pid=$(head -n 1 "$PGDIR/postmaster.pid" 2>/dev/null) || return 0
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
	if [[ $state == Z ]]; then
		log "removing stale postmaster.pid and socket lock (process $pid is a zombie)"
		local lock
		for lock in "$PGDIR"/.s.PGSQL.*.lock; do
			[[ -f $lock && $(head -n 1 "$lock") == "$pid" ]] && rm -f "$lock" "${lock%.lock}"
		done
		rm -f "$PGDIR/postmaster.pid"
	fi
}

is_running() {
	clear_zombie_pidfile
	as_pg "$BINDIR/pg_ctl" status -D "$PGDIR" >/dev/null 2>&1
}

psql_admin() {
	# Superuser `postgres` exists in a cluster initialised by this script (initdb -U postgres).
	as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"
}

dsn() { printf 'postgres://%s:%s@127.0.0.1:%s/postgres?sslmode=disable' "$ROLE" "$ROLE" "$PORT"; }

# Writes the settings this script owns. Re-written before every start, so changing the port (or
# this script) takes effect on the next start of an existing cluster.
write_config() {
	local socket_dir=$PGDIR
	# Unix socket paths are limited to 107 bytes; without a socket, TCP still works.
	((${#socket_dir} < 90)) || socket_dir=''
	as_pg tee "$PGDIR/tessera.conf" >/dev/null <<EOF
# Written by scripts/postgres.sh on every start; edits here are lost.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$socket_dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
	as_pg tee "$PGDIR/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/postgres.sh on every start: trust on loopback only (test cluster).
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
host    all       all   ::1/128       trust
EOF
	if ! grep -qx "include_if_exists = 'tessera.conf'" "$PGDIR/postgresql.conf"; then
		printf "\ninclude_if_exists = 'tessera.conf'\n" | as_pg tee -a "$PGDIR/postgresql.conf" >/dev/null
	fi
}

prepare_dir() {
	# Refuse (before any chown) a directory that holds something else than a cluster.
	if [[ -d $PGDIR && ! -f $PGDIR/PG_VERSION && -n $(ls -A "$PGDIR") ]]; then
		die "$PGDIR is not empty and is not a PostgreSQL cluster; remove it or set TESSERA_PG_DIR"
	fi
	mkdir -p "$PGDIR"
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "OS user 'postgres' does not exist (is the postgresql package installed?)"
		if [[ $(stat -c %U "$PGDIR") != postgres ]]; then
			chown -R postgres:postgres "$PGDIR"
		fi
		as_pg test -x "$PGDIR" -a -w "$PGDIR" ||
			die "user postgres cannot access $PGDIR (a parent directory is not traversable?); set TESSERA_PG_DIR elsewhere, e.g. under /tmp"
	fi
	chmod 700 "$PGDIR"
}

init_cluster() {
	if [[ -f $PGDIR/PG_VERSION ]]; then
		local have want
		have=$(<"$PGDIR/PG_VERSION")
		want=$(basename "$(dirname "$BINDIR")")
		[[ $have == "$want" ]] ||
			die "$PGDIR holds a PostgreSQL $have cluster but the server is $want; remove it (scripts/postgres.sh stop; rm -rf $PGDIR)"
		return
	fi
	log "initialising a new cluster in $PGDIR"
	as_pg "$BINDIR/initdb" -D "$PGDIR" -U postgres -E UTF8 --locale=C -A trust --no-sync >&2
}

ensure_role() {
	local super
	super=$(psql_admin -tA -c "SELECT rolsuper FROM pg_roles WHERE rolname = '$ROLE'")
	case $super in
	t) ;;
	f)
		log "granting SUPERUSER to role $ROLE"
		psql_admin -c "ALTER ROLE $ROLE WITH SUPERUSER LOGIN PASSWORD '$ROLE'"
		;;
	'')
		log "creating role $ROLE"
		psql_admin -c "CREATE ROLE $ROLE WITH SUPERUSER LOGIN PASSWORD '$ROLE'"
		;;
	*) die "unexpected answer from psql: $super" ;;
	esac
}

start() {
	BINDIR=$(find_bindir) || true
	if [[ -z ${BINDIR:-} ]]; then
		install_postgres
		BINDIR=$(find_bindir) || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"
	fi

	# Serialise concurrent invocations (e.g. two test runs starting at once).
	exec 9>"/tmp/tessera-pg-$PORT.lock"
	flock 9

	if [[ -f $PGDIR/PG_VERSION ]] && is_running; then
		local running_port
		running_port=$(sed -n 4p "$PGDIR/postmaster.pid" 2>/dev/null || true)
		if [[ -n $running_port && $running_port != "$PORT" ]]; then
			die "the cluster in $PGDIR runs on port $running_port, not $PORT; run 'scripts/postgres.sh stop' first"
		fi
		as_pg "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 10 ||
			die "the cluster in $PGDIR is running but does not accept connections on 127.0.0.1:$PORT; see $LOGFILE"
		log "already running ($PGDIR, port $PORT)"
	else
		prepare_dir
		init_cluster
		write_config
		log "starting PostgreSQL on 127.0.0.1:$PORT (data $PGDIR, log $LOGFILE)"
		if ! as_pg "$BINDIR/pg_ctl" start -D "$PGDIR" -l "$LOGFILE" -w -t 60 >&2; then
			log "pg_ctl start failed; last lines of $LOGFILE:"
			tail -n 30 "$LOGFILE" >&2 || true
			die "could not start PostgreSQL (port $PORT already in use?)"
		fi
	fi
	ensure_role
	echo "TESSERA_TEST_POSTGRES_DSN=$(dsn)"
}

stop() {
	BINDIR=$(find_bindir) || true
	if [[ -z ${BINDIR:-} || ! -f $PGDIR/PG_VERSION ]] || ! is_running; then
		log "not running ($PGDIR)"
		return 0
	fi
	as_pg "$BINDIR/pg_ctl" stop -D "$PGDIR" -m fast -w -t 60 >&2
}

status() {
	BINDIR=$(find_bindir) || true
	if [[ -n ${BINDIR:-} && -f $PGDIR/PG_VERSION ]] && is_running; then
		log "running ($PGDIR); $(dsn)"
		return 0
	fi
	log "not running ($PGDIR)"
	return 3
}

case $CMD in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 [start|stop|status]" >&2
	exit 2
	;;
esac
