#!/usr/bin/env bash
# The whole end-to-end run on a local kind cluster: build the images (docker/build.sh), create
# the offline kind cluster (e2e/kind/cluster.sh up), `kind load docker-image` both images, run
# e2e/suite/suite.sh against it, delete the cluster.
#
#   bash e2e/suite/kind.sh
#
# Environment: as e2e/README.md (MEDIACHAIN_E2E_CACHE, ...) plus MEDIACHAIN_KIND_CLUSTER
# (default mediachain-suite), MEDIACHAIN_SKIP_IMAGES=1 (images already built),
# MEDIACHAIN_KIND_SMOKE=1 (run the cluster's smoke test first, on the same cluster: e2e/ci.sh),
# MEDIACHAIN_E2E_INGRESS (default 1: build Traefik from its Go module, e2e/suite/traefik.sh, load
# it, and run the suite's Ingress part; 0: the suite without it, which it reports as SKIPPED).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$E2E_DIR/kind/docker.sh"
. "$E2E_DIR/suite/common.sh"
export MEDIACHAIN_KIND_CLUSTER=${MEDIACHAIN_KIND_CLUSTER:-mediachain-suite}
[ -f "$E2E_CACHE/tools.env" ] || bash "$E2E_DIR/tools.sh" all >/dev/null
# shellcheck disable=SC1091
. "$E2E_CACHE/tools.env"

UP=""
cleanup() {
  local rc=$?
  if [ -n "$UP" ]; then
    timeout 120 bash "$E2E_DIR/kind/cluster.sh" down >/dev/null 2>&1 || true
  fi
  docker_down
  exit "$rc"
}
docker_up
trap cleanup EXIT
if [ "${MEDIACHAIN_SKIP_IMAGES:-0}" != 1 ]; then
  step "images (docker/build.sh)" bash "$REPO_ROOT/docker/build.sh"
fi
UP=1
if [ "${MEDIACHAIN_KIND_SMOKE:-0}" = 1 ]; then
  out=$(step "kind cluster up + smoke test ($MEDIACHAIN_KIND_CLUSTER)" bash "$E2E_DIR/kind/cluster.sh" up-smoke)
else
  out=$(step "kind cluster up ($MEDIACHAIN_KIND_CLUSTER)" bash "$E2E_DIR/kind/cluster.sh" up)
fi
echo "$out" | grep -v '^export ' >&2 || true
eval "$(echo "$out" | grep '^export ')"
# The peer image under a second tag: the suite's image change (e2e/suite/rollout.sh).
export MEDIACHAIN_E2E_ROLLOUT_TAG=$IMAGE_TAG-rollout
docker tag "$PEER_IMAGE" "mediachain-peer:$MEDIACHAIN_E2E_ROLLOUT_TAG"
LOAD=("$PEER_IMAGE" "mediachain-peer:$MEDIACHAIN_E2E_ROLLOUT_TAG" "$OPERATOR_IMAGE")
if [ "${MEDIACHAIN_E2E_INGRESS:-1}" != 0 ]; then
  ingress_image=$(step "ingress controller image (e2e/suite/traefik.sh)" timeout 3600 bash "$E2E_DIR/suite/traefik.sh")
  export MEDIACHAIN_E2E_INGRESS_IMAGE=$ingress_image
  LOAD+=("$ingress_image")
fi
step "kind load docker-image ${LOAD[*]}" \
  timeout 300 "$KIND_BIN" load docker-image "${LOAD[@]}" --name "$MEDIACHAIN_KIND_CLUSTER"
step "end-to-end suite (e2e/suite/suite.sh)" bash "$E2E_DIR/suite/suite.sh"
