#!/usr/bin/env bash
# The e2e stage of CI (.ci/run runs it after the workspace tests): tools, packaging checks, and
# the offline kind cluster with its smoke test and the end-to-end suite. See e2e/README.md.
# The apiserver-harness tests (`cargo test -p kube-harness`) are workspace tests: scripts/test.sh
# runs them, not this script, so that CI counts each test once.
#
#   bash e2e/ci.sh
#
# Environment (each part runs unless its variable is 0; a part left out prints `SKIPPED:`):
#   MEDIACHAIN_E2E_CACHE   cache root (default /var/cache/mediachain-e2e)
#   MEDIACHAIN_E2E_PACKAGING  e2e/packaging.sh: chart/manifests checks, the container images, the
#                          containerized fleet check (0: left out, and the suite with it)
#   MEDIACHAIN_E2E_KIND    the node image, the kind cluster and its smoke test (0: left out)
#   MEDIACHAIN_E2E_SUITE   the Kubernetes end-to-end suite on the kind cluster (e2e/suite/kind.sh,
#                          after the smoke test, on the same cluster; 0: smoke test only)
#   MEDIACHAIN_E2E_INGRESS the suite's Ingress part (Traefik built from its Go module, 13 min
#                          once, then cached; 0: without it)
#   MEDIACHAIN_E2E_TWO_CLUSTERS  1: also one network across two kind clusters, after the suite
#                          (e2e/suite/two_clusters.sh, about 10 min). Not run by default: a
#                          cold .ci/run took 55 min without it, and must stay under 60.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KIND=${MEDIACHAIN_E2E_KIND:-1}
PACKAGING=${MEDIACHAIN_E2E_PACKAGING:-1}
SUITE=${MEDIACHAIN_E2E_SUITE:-1}

if [ "$KIND" != 0 ]; then
  step "tools (all)" bash "$E2E_DIR/tools.sh" all >/dev/null
else
  step "tools (harness)" bash "$E2E_DIR/tools.sh" harness >/dev/null
fi
# shellcheck disable=SC1091
. "$E2E_CACHE/tools.env"

if [ "$PACKAGING" != 0 ]; then
  step "packaging: chart checks, images, fleet check (e2e/packaging.sh)" bash "$E2E_DIR/packaging.sh"
else
  skipped "packaging: chart checks, images, fleet check (MEDIACHAIN_E2E_PACKAGING=0)"
fi

if [ "$KIND" = 0 ]; then
  skipped "kind cluster, smoke test and end-to-end suite (MEDIACHAIN_E2E_KIND=0)"
elif [ "$SUITE" != 0 ] && [ "$PACKAGING" != 0 ]; then
  # One cluster for both: the smoke test, then the suite (images built by packaging.sh).
  step "kind cluster + smoke test + end-to-end suite (e2e/suite/kind.sh)" \
    env MEDIACHAIN_KIND_SMOKE=1 MEDIACHAIN_SKIP_IMAGES=1 MEDIACHAIN_KIND_CLUSTER=mediachain-e2e \
    timeout 3600 bash "$E2E_DIR/suite/kind.sh"
  if [ "${MEDIACHAIN_E2E_TWO_CLUSTERS:-0}" = 1 ]; then
    step "one network across two kind clusters (e2e/suite/two_clusters.sh)" \
      env MEDIACHAIN_SKIP_IMAGES=1 timeout 1800 bash "$E2E_DIR/suite/two_clusters.sh"
  fi
else
  step "kind cluster + smoke test" bash "$E2E_DIR/kind/cluster.sh" smoke
  skipped "end-to-end suite on kind (MEDIACHAIN_E2E_SUITE=$SUITE, MEDIACHAIN_E2E_PACKAGING=$PACKAGING; the suite needs packaging's images)"
fi
log "e2e: all requested steps passed"
