#!/usr/bin/env bash
# Packaging checks of CI (called by e2e/ci.sh; see e2e/suite/README.md):
#   1. chart + manifests static checks (e2e/suite/chart.sh): CRD/manifests/RBAC in sync, helm
#      lint, helm template;
#   2. the container images (docker/build.sh): release binaries, FROM scratch, non-root;
#   3. the containerized fleet check (e2e/suite/fleet.sh): 3 peer containers on a Docker
#      network converge and serve a client; a removed peer recovers from its volume;
#   4. only with MEDIACHAIN_E2E_SUITE=1: the Kubernetes suite on a kind cluster
#      (e2e/suite/kind.sh: helm install, sample network reconciled, transactions, pod recovery,
#      scale-up).
#
#   bash e2e/packaging.sh
#
# Environment: MEDIACHAIN_E2E_PACKAGING=0 skips it all; MEDIACHAIN_E2E_SUITE=1 adds step 4.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/kind/docker.sh"

if [ "${MEDIACHAIN_E2E_PACKAGING:-1}" = 0 ]; then
  log "packaging: SKIPPED (MEDIACHAIN_E2E_PACKAGING=0)"
  exit 0
fi
# helm from its Go module (cached; the same pin and build as e2e/tools.sh).
step "helm $HELM_VERSION" go_tool helm "helm.sh/helm/v3@$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
HELM_BIN=$E2E_BIN/helm
KUBECTL_BIN=${KUBECTL_BIN:-$E2E_BIN/kubectl}
export HELM_BIN KUBECTL_BIN

step "chart and manifests checks (e2e/suite/chart.sh)" timeout 300 bash "$E2E_DIR/suite/chart.sh"

docker_up
trap docker_down EXIT
images() {
  local out
  out=$(timeout 3600 bash "$REPO_ROOT/docker/build.sh") || return 1
  echo "$out" | while read -r name size; do log "image $name: $((size / 1024 / 1024)) MiB"; done
}
step "container images (docker/build.sh)" images
step "containerized fleet check (e2e/suite/fleet.sh)" timeout 900 bash "$E2E_DIR/suite/fleet.sh"

if [ "${MEDIACHAIN_E2E_SUITE:-0}" = 1 ]; then
  step "Kubernetes end-to-end suite on kind (e2e/suite/kind.sh)" \
    env MEDIACHAIN_SKIP_IMAGES=1 timeout 1800 bash "$E2E_DIR/suite/kind.sh"
else
  log "Kubernetes end-to-end suite on kind: SKIPPED (set MEDIACHAIN_E2E_SUITE=1)"
fi
log "packaging: all requested steps passed"
