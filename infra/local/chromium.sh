#!/usr/bin/env bash
# Installs Debian's chromium (for the dashboard's browser test) when it is missing and prints
# its path. Playwright drives this executable; it never downloads a browser of its own.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_chromium() { command -v chromium || command -v chromium-browser || true; }

path="$(find_chromium)"
if [[ -z $path ]]; then
  log "installing chromium (Debian package) for the dashboard's browser test"
  apt_install chromium
  path="$(find_chromium)"
fi
[[ -n $path ]] || die "chromium is not on PATH after installing it"
printf '%s\n' "$path"
