#!/usr/bin/env bash
# Installs (if missing) and starts Redis, PostgreSQL and Kafka, then creates the topics.
# Idempotent: what already runs is reported and left alone.
# KAFKA_SECURITY=sasl_ssl: the services (infra.env) and the topic creation use the broker's
# SASL_SSL listener (SCRAM-SHA-512, the local CA) instead of PLAINTEXT.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=kafka_nodes.sh
source "$INFRA_DIR/kafka_nodes.sh"

KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
case $KAFKA_SECURITY in
  plaintext | sasl_ssl) export KAFKA_SECURITY ;;
  *) die "KAFKA_SECURITY=$KAFKA_SECURITY: expected plaintext or sasl_ssl" ;;
esac

# The Kafka lines of infra.env.
kafka_env() {
  # The layout topics.sh gave a three-node cluster, so `sandboxctl topics` checks against it.
  ((BROKERS == 1)) || echo "export KAFKA_REPLICATION_FACTOR=3 KAFKA_MIN_INSYNC_REPLICAS=2"
  if [[ $KAFKA_SECURITY == plaintext ]]; then
    echo "export KAFKA_BOOTSTRAP_SERVERS=$(kafka_bootstrap "$BROKERS")"
    return
  fi
  local KAFKA_SASL_SSL_BOOTSTRAP_SERVERS KAFKA_SASL_MECHANISM KAFKA_SASL_USERNAME
  local KAFKA_SASL_PASSWORD KAFKA_SSL_CAFILE
  # shellcheck source=/dev/null # written by kafka.sh start
  source "$STATE/kafka/sasl-ssl.env"
  printf 'export %s\n' "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_SASL_SSL_BOOTSTRAP_SERVERS" \
    KAFKA_SECURITY_PROTOCOL=SASL_SSL "KAFKA_SASL_MECHANISM=$KAFKA_SASL_MECHANISM" \
    "KAFKA_SASL_USERNAME=$KAFKA_SASL_USERNAME" "KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD" \
    "KAFKA_SSL_CAFILE=$KAFKA_SSL_CAFILE"
}

ensure_state_dirs
for svc in redis postgres kafka; do
  "$INFRA_DIR/$svc.sh" install
  "$INFRA_DIR/$svc.sh" start
done
# Read after the start: without KAFKA_BROKERS, the size of the Kafka that runs.
BROKERS="$(kafka_brokers)"
if [[ $KAFKA_SECURITY == sasl_ssl ]] &&
  ! grep -qs '^listeners=.*SASL_SSL' "$(node_conf_dir "$BROKERS" 1)/server.properties"; then
  die "KAFKA_SECURITY=sasl_ssl: the running broker has no SASL_SSL listener; restart it (infra/local/kafka.sh stop, then make up again)"
fi
KAFKA_BROKERS="$BROKERS" "$INFRA_DIR/topics.sh"

PG_PORT="${POSTGRES_PORT:-${PGPORT_LOCAL:-5432}}"
umask 077 # it may hold the Kafka password
if [[ ${REDIS_MODE:-standalone} == cluster ]]; then
  read -r -a cluster_ports <<<"${REDIS_CLUSTER_PORTS:-7001 7002 7003}"
  redis_env="export REDIS_URL=redis://127.0.0.1:${cluster_ports[0]}/0
export REDIS_CLUSTER=true"
else
  redis_env="export REDIS_URL=redis://127.0.0.1:${REDIS_PORT:-6379}/0
export REDIS_CLUSTER=false"
fi
cat >"$STATE/infra.env.tmp" <<ENV
# written by infra/local/up.sh: source it to point the services at the local infrastructure
$(kafka_env)
export DATABASE_URL=postgresql://sandboxes:sandboxes@127.0.0.1:$PG_PORT/sandboxes
export TEST_DATABASE_URL=postgresql://sandboxes:sandboxes@127.0.0.1:$PG_PORT/sandboxes_test
$redis_env
ENV
if cmp -s "$STATE/infra.env.tmp" "$STATE/infra.env"; then rm -f "$STATE/infra.env.tmp"; else mv -f "$STATE/infra.env.tmp" "$STATE/infra.env"; fi
log "local infrastructure is up (env in $STATE/infra.env):"
sed -n -e 's/^export KAFKA_SASL_PASSWORD=.*/[infra]   KAFKA_SASL_PASSWORD=(in the file)/p' \
  -e 's/^export /[infra]   /p' "$STATE/infra.env"
