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
SIM_URL="http://127.0.0.1:${E2B_SIM_PORT:-8090}"
STATUS_URL="http://127.0.0.1:${STATUS_API_PORT:-8081}"
DEMO=(demo-1 demo-2 demo-3)  # made by scripts/e2b-dev-setup.sh
TOKEN="$("$ROOT/.venv/bin/sandboxctl" token --project demo "${DEMO[@]/#/--project=}")"
ADMIN_TOKEN="$("$ROOT/.venv/bin/sandboxctl" token --admin)"
if [[ $E2B_API_URL == "$SIM_URL" ]]; then
  E2B_LINE="E2B simulator $SIM_URL   (E2B_API_URL; key E2B_SIM_API_KEY in secrets.env)"
else
  E2B_LINE="E2B API       $E2B_API_URL   (simulator at $SIM_URL is running but not used)"
fi
# Each demo project's state as status-api serves it (sandboxes made by scripts/e2b-dev-setup.sh).
DEMO_LINES=""
for project in "${DEMO[@]}"; do
  body="$(curl -s -m 3 -H "Authorization: Bearer $TOKEN" "$STATUS_URL/api/projects/$project/sandbox" || true)"
  sandbox="$(sed -n 's/.*"sandboxId":"\([^"]*\)".*/\1/p' <<<"$body")"
  status="$(sed -n 's/.*"status":"\([A-Z]*\)".*/\1/p' <<<"$body")"
  DEMO_LINES+="    $project  ${sandbox:-(not in status-api yet)}  $status"$'\n'
done
DEMO_TEXT="  Demo fleet: sandboxes in the E2B simulator; their signed webhooks flow through
  ingest -> Kafka -> projector -> status-api (E2B auto-pauses them at their timeout):
${DEMO_LINES}    source .state/env.sh && .venv/bin/sandboxctl webhooks list
    curl -s -H \"Authorization: Bearer \$(.venv/bin/sandboxctl token --project demo-1)\" \\
      $STATUS_URL/api/projects/demo-1/sandbox
  Live (server-sent events; pauseImminent 30 s before an idle pause):
    curl -sN \"$STATUS_URL/api/projects/demo-1/sandbox/stream?access_token=\$(.venv/bin/sandboxctl token --project demo-1)\"
"
[[ $E2B_API_URL == "$SIM_URL" ]] || DEMO_TEXT=""
cat <<TXT

  ingest      http://127.0.0.1:${INGEST_PORT:-8080}   (POST /api/webhooks/e2b)
  status-api  http://127.0.0.1:${STATUS_API_PORT:-8081}   (OpenAPI: /schema)
  dashboard   $STATUS_URL/dashboard/#token=$ADMIN_TOKEN
  projector   http://127.0.0.1:${PROJECTOR_PORT:-8082}   (/healthz /readyz /metrics)
  $E2B_LINE
  Kafka ${KAFKA_BOOTSTRAP_SERVERS}   PostgreSQL ${DATABASE_URL%%@*}@...   Redis ${REDIS_URL}
  logs: $STATE/logs/   secrets: $STATE/secrets.env

  Dev token for projects "demo" and ${DEMO[*]}:
    $TOKEN

${DEMO_TEXT}
  Send a signed test webhook (a sandbox created for project "demo"), then read its state:
    source .state/env.sh      # settings + dev secrets for sandboxctl in this shell
    .venv/bin/sandboxctl send-webhook --project demo --type created
    curl -s -H "Authorization: Bearer \$(.venv/bin/sandboxctl token --project demo)" \\
      http://127.0.0.1:${STATUS_API_PORT:-8081}/api/projects/demo/sandbox

TXT
