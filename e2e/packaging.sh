#!/usr/bin/env bash
# Packaging checks of CI (called by e2e/ci.sh; see e2e/suite/README.md):
#   1. chart + manifests static checks (e2e/suite/chart.sh): CRD/manifests/RBAC in sync, helm
#      lint, helm template;
#   2. the container images (docker/build.sh): release binaries, FROM scratch, non-root;
#   3. the containerized fleet check (e2e/suite/fleet.sh): 3 peer containers on a Docker
#      network converge and serve a client; a removed peer recovers from its volume.
# (e2e/ci.sh then runs the Kubernetes suite on kind with these images: e2e/suite/kind.sh.)
#
#   bash e2e/packaging.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/kind/docker.sh"

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

log "packaging: all steps passed"
