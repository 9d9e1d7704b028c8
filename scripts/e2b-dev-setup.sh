#!/usr/bin/env bash
# Run by `make up` after the services start: registers ingest's webhook with the local E2B
# simulator and creates the demo fleet, then waits until status-api shows it. Idempotent.
# When E2B_API_URL points elsewhere (real E2B), it changes nothing there and says what to do.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${STATE_DIR:-$ROOT/.state}"
# shellcheck source=/dev/null
source "$STATE/env.sh"
SIM_URL="http://127.0.0.1:${E2B_SIM_PORT:-8090}"
INGEST_HOOK="http://127.0.0.1:${INGEST_PORT:-8080}/api/webhooks/e2b"
CTL="$ROOT/.venv/bin/sandboxctl"

if [[ $E2B_API_URL != "$SIM_URL" ]]; then
  echo "[e2b] E2B_API_URL=$E2B_API_URL: the simulator runs at $SIM_URL but is not used;"
  echo "[e2b] no demo fleet. Register ingest's public URL with that E2B yourself:"
  echo "[e2b]   .venv/bin/sandboxctl webhooks register --url https://<public host>/api/webhooks/e2b"
  exit 0
fi
registered="$("$CTL" webhooks register --url "$INGEST_HOOK")"
echo "[e2b] webhook: $registered"
if ! "$CTL" demo-fleet --count 3 --auto-pause \
  --status-api-url "http://127.0.0.1:${STATUS_API_PORT:-8081}" --wait 60 | sed 's/^/[e2b] /'; then
  echo "[e2b] WARNING: the demo fleet is not visible in status-api yet (see $STATE/logs/)" >&2
fi
