#!/usr/bin/env bash
# Installs helm into the project's cache ($SANDBOX_CACHE_DIR/bin, default ~/.cache/e2b-lifecycle)
# and prints its path. Idempotent: a helm of the wanted version already there is reused.
# helm is built from the Go module proxy (`go install`): its release binaries come from a host
# that CI machines cannot reach. Go itself is installed from Debian when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../infra/local/lib.sh
source "$ROOT/infra/local/lib.sh"

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
BIN="$CACHE/bin"
HELM="$BIN/helm-$HELM_VERSION"

if [[ -x $HELM ]] && "$HELM" version --short 2>/dev/null | grep -qF "$HELM_VERSION"; then
  echo "$HELM"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  [[ -x /usr/local/go/bin/go ]] && PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || apt_install golang-go >&2
mkdir -p "$BIN"
log "building helm $HELM_VERSION with go install (a few minutes, once)" >&2
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
# The version is stamped the way helm's own Makefile does, so `helm version` names it.
GOBIN="$build" CGO_ENABLED=0 go install \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 || die "go install helm $HELM_VERSION failed"
mv "$build/helm" "$HELM"
ln -sfn "$(basename "$HELM")" "$BIN/helm"
log "helm $HELM_VERSION installed at $HELM" >&2
echo "$HELM"
