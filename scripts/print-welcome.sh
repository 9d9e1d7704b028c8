#!/usr/bin/env bash
# Printed at the end of `make up`: where everything is and how to try it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${STATE_DIR:-$ROOT/.state}"
# shellcheck source=/dev/null
source "$STATE/infra.env"
# shellcheck source=/dev/null
source "$STATE/secrets.env"
export STATUS_API_JWT_SECRET E2B_WEBHOOK_SECRET
TOKEN="$("$ROOT/.venv/bin/sandboxctl" token --project demo)"
cat <<TXT

  ingest      http://127.0.0.1:${INGEST_PORT:-8080}   (POST /api/webhooks/e2b)
  status-api  http://127.0.0.1:${STATUS_API_PORT:-8081}   (OpenAPI: /schema)
  projector   http://127.0.0.1:${PROJECTOR_PORT:-8082}   (/healthz /readyz /metrics)
  Kafka ${KAFKA_BOOTSTRAP_SERVERS}   PostgreSQL ${DATABASE_URL%%@*}@...   Redis ${REDIS_URL}
  logs: $STATE/logs/   secrets: $STATE/secrets.env

  Dev token for project "demo":
    $TOKEN

  Send a signed test webhook (a sandbox created for project "demo"), then read its state:
    source .state/env.sh      # settings + dev secrets for sandboxctl in this shell
    .venv/bin/sandboxctl send-webhook --project demo --type created
    curl -s -H "Authorization: Bearer \$(.venv/bin/sandboxctl token --project demo)" \\
      http://127.0.0.1:${STATUS_API_PORT:-8081}/api/projects/demo/sandbox

TXT
