#!/usr/bin/env bash
# The e2e step of CI: tools, apiserver-harness tests, and (when enabled) the offline kind cluster
# with its smoke test. See e2e/README.md.
#
#   bash e2e/ci.sh
#
# Environment:
#   MEDIACHAIN_E2E_CACHE   cache root (default /var/cache/mediachain-e2e)
#   MEDIACHAIN_E2E_KIND    1 (default) = also build the node image, create the kind cluster and
#                          run the smoke test; 0 = apiserver harness only
#   MEDIACHAIN_E2E_PACKAGING  1 (default) = e2e/packaging.sh: chart/manifests checks, the container
#                          images, the containerized fleet check; 0 = skip
#   MEDIACHAIN_E2E_SUITE   1 (default) = also the Kubernetes end-to-end suite on the kind cluster
#                          (e2e/suite/kind.sh, after the smoke test); 0 = smoke test only
#   MEDIACHAIN_E2E_INGRESS 1 (default) = the suite's Ingress part (Traefik built from its Go module,
#                          13 min once, then cached); 0 = without it
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KIND_ENABLED=${MEDIACHAIN_E2E_KIND:-1}

if [ "$KIND_ENABLED" = 1 ]; then
  step "tools (all)" bash "$E2E_DIR/tools.sh" all >/dev/null
else
  step "tools (harness)" bash "$E2E_DIR/tools.sh" harness >/dev/null
fi
# shellcheck disable=SC1091
. "$E2E_CACHE/tools.env"

harness_tests() { (cd "$REPO_ROOT" && cargo test -p kube-harness); }
step "apiserver harness tests (cargo test -p kube-harness)" harness_tests

step "packaging: chart checks, images, fleet check (e2e/packaging.sh)" \
  env MEDIACHAIN_E2E_SUITE=0 bash "$E2E_DIR/packaging.sh"

SUITE_ENABLED=${MEDIACHAIN_E2E_SUITE:-1}
if [ "$KIND_ENABLED" = 1 ] && [ "$SUITE_ENABLED" = 1 ] && [ "${MEDIACHAIN_E2E_PACKAGING:-1}" != 0 ]; then
  # One cluster for both: the smoke test, then the suite (images built by packaging.sh).
  step "kind cluster + smoke test + end-to-end suite (e2e/suite/kind.sh)" \
    env MEDIACHAIN_KIND_SMOKE=1 MEDIACHAIN_SKIP_IMAGES=1 MEDIACHAIN_KIND_CLUSTER=mediachain-e2e \
    MEDIACHAIN_E2E_INGRESS="${MEDIACHAIN_E2E_INGRESS:-1}" \
    timeout 3600 bash "$E2E_DIR/suite/kind.sh"
elif [ "$KIND_ENABLED" = 1 ]; then
  step "kind cluster + smoke test" bash "$E2E_DIR/kind/cluster.sh" smoke
  log "end-to-end suite on kind: SKIPPED (MEDIACHAIN_E2E_SUITE=$SUITE_ENABLED)"
else
  log "kind cluster: SKIPPED (MEDIACHAIN_E2E_KIND=$KIND_ENABLED)"
fi
log "e2e: all requested steps passed"
