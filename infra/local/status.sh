#!/usr/bin/env bash
# Prints running/stopped for each local service; exits 0 only when all run (3 otherwise).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
for svc in redis postgres kafka; do
  "$INFRA_DIR/$svc.sh" status || rc=3
done
exit "$rc"
