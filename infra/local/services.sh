#!/usr/bin/env bash
# Starts/stops the E2B simulator and our own services (projector, ingest, status-api, the
# enforcer's ticker and its actuator) in the background, by pid file.
# Usage: services.sh {start|stop|status}
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# name:port:console-script:secrets (the health endpoint of each answers on that port; each is
# given only the secrets named, as the Helm chart does)
SERVICES=(
  "e2b-sim:${E2B_SIM_PORT:-8090}:e2b-sim:E2B_SIM_API_KEY"
  "projector:${PROJECTOR_PORT:-8082}:sandbox-projector:"
  "ingest:${INGEST_PORT:-8080}:sandbox-ingest:E2B_WEBHOOK_SECRET"
  "status-api:${STATUS_API_PORT:-8081}:sandbox-status-api:STATUS_API_JWT_SECRET"
  "enforcer:${ENFORCER_PORT:-8083}:sandbox-enforcer:E2B_API_KEY"
  "actuator:${ACTUATOR_PORT:-8084}:sandbox-actuator:E2B_API_KEY"
)
SECRETS=(E2B_WEBHOOK_SECRET STATUS_API_JWT_SECRET E2B_API_KEY E2B_SIM_API_KEY)
VENV_BIN="$ROOT/.venv/bin"

random_secret() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-"$1"; }

# Dev secrets, made once per state folder; real deployments set them in the environment.
# A file written by an older version gets what it lacks appended (existing values are kept).
ensure_secrets() {
  local file="$STATE/secrets.env" sim_url="http://127.0.0.1:${E2B_SIM_PORT:-8090}"
  if [[ ! -s $file ]]; then
    umask 077
    echo "# dev secrets written by infra/local/services.sh (never commit these)" >"$file"
    log "dev secrets written to $file"
  fi
  if ! grep -q '^export E2B_WEBHOOK_SECRET=' "$file"; then
    echo "export E2B_WEBHOOK_SECRET=${E2B_WEBHOOK_SECRET:-$(random_secret 40)}" >>"$file"
  fi
  if ! grep -q '^export STATUS_API_JWT_SECRET=' "$file"; then
    echo "export STATUS_API_JWT_SECRET=${STATUS_API_JWT_SECRET:-$(random_secret 48)}" >>"$file"
  fi
  if ! grep -q '^export E2B_SIM_API_KEY=' "$file"; then
    {
      echo "# the local E2B simulator's API key; E2B_API_URL/E2B_API_KEY point at the simulator"
      echo "# unless E2B_API_URL was already set (real E2B: then set E2B_API_KEY too)"
      echo "export E2B_SIM_API_KEY=$(random_secret 40)"
      echo "if [ -z \"\${E2B_API_URL:-}\" ] || [ \"\$E2B_API_URL\" = $sim_url ]; then"
      echo "  export E2B_API_URL=$sim_url E2B_API_KEY=\"\$E2B_SIM_API_KEY\""
      echo "fi"
    } >>"$file"
    log "E2B simulator settings added to $file"
  fi
  cat "$STATE/infra.env" "$file" >"$STATE/env.sh"
}

start_one() {
  local name=$1 port=$2 script=$3 given=$4 pidfile="$RUN_DIR/$1.pid" secret
  local withheld=()
  for secret in "${SECRETS[@]}"; do
    [[ ",$given," == *",$secret,"* ]] || withheld+=(-u "$secret")
  done
  if pid_alive "$pidfile" "$script"; then
    log "$name already running (pid $(read_pid "$pidfile"), port $port)"
    return 0
  fi
  local var=${name^^}
  port_open 127.0.0.1 "$port" && fail_port_taken "$name" 127.0.0.1 "$port" "${var//-/_}_PORT"
  [[ -x $VENV_BIN/$script ]] || die "$VENV_BIN/$script missing: run 'make deps' first"
  setsid nohup env "${withheld[@]}" "$VENV_BIN/$script" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  if ! wait_for_port 127.0.0.1 "$port" 30; then
    tail -n 30 "$LOG_DIR/$name.log" >&2
    die "$name did not open port $port within 30s (log: $LOG_DIR/$name.log)"
  fi
  log "$name started (pid $(read_pid "$pidfile"), http://127.0.0.1:$port, log $LOG_DIR/$name.log)"
}

cmd=${1:-}
ensure_state_dirs
case $cmd in
  start)
    ensure_secrets
    # shellcheck source=/dev/null
    source "$STATE/infra.env"
    # shellcheck source=/dev/null
    source "$STATE/secrets.env"
    export E2B_WEBHOOK_SECRET STATUS_API_JWT_SECRET E2B_SIM_API_KEY
    # The dev stack's notification receivers listen on this machine (issue 17: loopback is
    # refused unless a setting allows it).
    export NOTIFY_REACH="${NOTIFY_REACH:-loopback}"
    for entry in "${SERVICES[@]}"; do
      IFS=: read -r name port script secrets <<<"$entry"
      start_one "$name" "$port" "$script" "$secrets"
    done
    ;;
  stop)
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
      IFS=: read -r name _ _ <<<"${SERVICES[$i]}"
      stop_pid "$RUN_DIR/$name.pid" "$name" || true
    done
    ;;
  status)
    rc=0
    for entry in "${SERVICES[@]}"; do
      IFS=: read -r name port script _ <<<"$entry"
      if pid_alive "$RUN_DIR/$name.pid" "$script"; then
        log "$name: running (pid $(read_pid "$RUN_DIR/$name.pid"), port $port)"
      else
        log "$name: stopped"; rc=3
      fi
    done
    exit $rc
    ;;
  *) die "usage: $0 {start|stop|status}" ;;
esac
