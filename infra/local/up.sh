#!/usr/bin/env bash
# Installs (if missing) and starts Redis, PostgreSQL and Kafka, then creates the topics.
# Idempotent: what already runs is reported and left alone.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=kafka_nodes.sh
source "$INFRA_DIR/kafka_nodes.sh"

ensure_state_dirs
for svc in redis postgres kafka; do
  "$INFRA_DIR/$svc.sh" install
  "$INFRA_DIR/$svc.sh" start
done
# Read after the start: without KAFKA_BROKERS, the size of the Kafka that runs.
BROKERS="$(kafka_brokers)"
KAFKA_BROKERS="$BROKERS" "$INFRA_DIR/topics.sh"

PG_PORT="${POSTGRES_PORT:-${PGPORT_LOCAL:-5432}}"
cat >"$STATE/infra.env.tmp" <<ENV
# written by infra/local/up.sh: source it to point the services at the local infrastructure
export KAFKA_BOOTSTRAP_SERVERS=$(kafka_bootstrap "$BROKERS")
export DATABASE_URL=postgresql://sandboxes:sandboxes@127.0.0.1:$PG_PORT/sandboxes
export TEST_DATABASE_URL=postgresql://sandboxes:sandboxes@127.0.0.1:$PG_PORT/sandboxes_test
export REDIS_URL=redis://127.0.0.1:${REDIS_PORT:-6379}/0
ENV
if cmp -s "$STATE/infra.env.tmp" "$STATE/infra.env"; then rm -f "$STATE/infra.env.tmp"; else mv -f "$STATE/infra.env.tmp" "$STATE/infra.env"; fi
log "local infrastructure is up (env in $STATE/infra.env):"
sed -n 's/^export /[infra]   /p' "$STATE/infra.env"
