# shellcheck shell=bash
# Shared helpers for infra/local/*.sh. Source it; do not run it.
# Everything we start is tracked by a pid file under $STATE/run and is only ever
# stopped through that pid (never by process name).

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$INFRA_DIR/../.." && pwd)"
STATE="${STATE_DIR:-$ROOT/.state}"
CACHE="${SANDBOX_CACHE_DIR:-$HOME/.cache/e2b-lifecycle}"
RUN_DIR="$STATE/run"
LOG_DIR="$STATE/logs"
DATA_DIR="$STATE/data"
export INFRA_DIR ROOT STATE CACHE RUN_DIR LOG_DIR DATA_DIR

log() { printf '[infra] %s\n' "$*"; }
warn() { printf '[infra] WARNING: %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

ensure_state_dirs() { mkdir -p "$RUN_DIR" "$LOG_DIR" "$DATA_DIR"; }

# port_open HOST PORT: true when something accepts TCP connections there.
# shellcheck disable=SC2016 # $1/$2 expand in the child bash
port_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for_port HOST PORT TIMEOUT_SECONDS
wait_for_port() {
  local host=$1 port=$2 deadline=$((SECONDS + $3))
  until port_open "$host" "$port"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# port_owner PORT: best-effort description of the process listening on PORT.
port_owner() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
}

# fail_port_taken NAME HOST PORT ENVVAR
fail_port_taken() {
  local owner
  owner="$(port_owner "$3")"
  die "$1: $2:$3 is already in use by a process we did not start${owner:+ ($owner)}; stop it or set $4 to another port"
}

# read_pid PIDFILE: prints the pid stored in the file (empty if none).
read_pid() {
  [[ -s $1 ]] || return 0
  local pid
  pid="$(head -n1 "$1" | tr -dc '0-9')"
  printf '%s' "$pid"
}

# pid_alive PIDFILE [CMDLINE_SUBSTRING]: true when the recorded process runs
# (and, if given, its command line contains the substring: guards against pid reuse).
pid_alive() {
  local pid
  pid="$(read_pid "$1")"
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ -z ${2:-} ]] && return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pid PIDFILE NAME: TERM, wait up to 20 s, then KILL. Removes the pid file.
stop_pid() {
  local pidfile=$1 name=$2 pid i
  pid="$(read_pid "$pidfile")"
  if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    return 1
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name (pid $pid) did not stop within 20s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  log "$name stopped (pid $pid)"
}

# apt_install PACKAGE...: installs Debian packages without letting their
# maintainer scripts start services (a temporary policy-rc.d answers 101 =
# "action forbidden" to invoke-rc.d / deb-systemd-invoke).
apt_install() {
  [[ $EUID -eq 0 ]] || die "installing $* needs root (run as root or via sudo)"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  local policy=/usr/sbin/policy-rc.d ours=0 stamp="$RUN_DIR/apt-update.stamp" rc=0
  ensure_state_dirs
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, written by infra/local/lib.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  local -a apt=(apt-get -q -o DPkg::Lock::Timeout=300)
  if [[ -z $(find "$stamp" -mmin -60 2>/dev/null) ]]; then
    log "apt-get update"
    "${apt[@]}" update >"$LOG_DIR/apt.log" 2>&1 && touch "$stamp" || rc=$?
  fi
  if ((rc == 0)); then
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$@" \
      >>"$LOG_DIR/apt.log" 2>&1 || rc=$?
  fi
  if ((ours)); then rm -f "$policy"; fi
  ((rc == 0)) || { tail -n 20 "$LOG_DIR/apt.log" >&2; die "apt-get failed for $* (see $LOG_DIR/apt.log)"; }
}

# run_command CMD: runs cmd_CMD of the sourcing script (each defines install/start/stop/status).
run_command() {
  case "${1:-}" in
    install | start | stop | status) "cmd_$1" ;;
    *) die "usage: $0 {install|start|stop|status}" ;;
  esac
}
