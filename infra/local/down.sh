#!/usr/bin/env bash
# Stops what up.sh started, by pid file only. Exits 0 when nothing runs.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
for svc in kafka postgres redis; do
  "$INFRA_DIR/$svc.sh" stop || rc=1
done
((rc == 0)) || die "some services could not be stopped (see above)"
log "local infrastructure is down"
