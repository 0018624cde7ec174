#!/usr/bin/env bash
# The end-to-end suite on a real cluster, from any kubeconfig ($KUBECONFIG; the images
# mediachain-operator:<tag> and mediachain-peer:<tag> must be available to its nodes, e.g. with
# `kind load docker-image`; e2e/suite/kind.sh does all of that on a local kind cluster):
#
#   1. a trust tower (mediachain CLI) and the principal Secret;
#   2. helm install of charts/mediachain-operator with its sample network (3 peers);
#   3. the operator reconciles it: MediachainPeer Ready, StatefulSet 3/3;
#   4. a client registers, writes and submits a transaction (submit --wait) through a
#      port-forward to peer 0; every peer has it committed;
#   5. pod sample-1 is deleted; a second transaction is confirmed meanwhile; the recreated pod is
#      Ready again with both transactions and the same journal height (nothing lost);
#   6. scale to 4 peers: the new peer becomes Ready and syncs both transactions; a third
#      transaction is confirmed through it;
#   6b. with MEDIACHAIN_E2E_ROLLOUT_TAG (kind.sh sets it): an image change rolls through the 4
#      peers, highest first, while a client writes; nothing it saw confirmed is lost and
#      confirmations never stop for long (e2e/suite/rollout.sh).
#   6c. the principal is rotated in two phases while a client writes: every peer moves to a
#      certificate of a second principal of the same root, one at a time; no peer loses
#      admission, confirmations never stop for long, nothing confirmed is lost
#      (e2e/suite/rotation.sh; MEDIACHAIN_E2E_ROTATION=0 leaves it out).
#
# Per-peer checks go through `kubectl proxy` (the apiserver's pod proxy). Every wait is bounded
# and names what it awaited; the release, namespace and helper processes are removed on exit
# (on failure: objects, events, operator and peer logs first).
#
# Environment: KUBECONFIG (required), KUBECTL_BIN/HELM_BIN (else kubectl/helm on PATH),
# MEDIACHAIN_IMAGE_TAG, MEDIACHAIN_E2E_NAMESPACE (default mediachain-e2e),
# MEDIACHAIN_E2E_IMAGE_PULL_POLICY (default Never: images loaded into the nodes),
# MEDIACHAIN_E2E_KEEP=1 (leave the release and namespace for inspection),
# MEDIACHAIN_E2E_ONLY=<part> (run one optional part alone, after the steps every part needs:
#   install, reconcile, transaction 1, scale to 4; parts: recovery, rollout, rotation, ingress,
#   metrics, backup),
# MEDIACHAIN_E2E_INGRESS_IMAGE (the Traefik image, e2e/suite/traefik.sh; set by kind.sh): then also
#   7. Traefik as ingress controller; the 4-peer `sample` gets an Ingress (className = the suite's
#      IngressClass); a client in a container on the nodes' Docker network
#      (MEDIACHAIN_E2E_DOCKER_NETWORK, default kind; image mediachain-cli) goes through the Ingress
#      (Host header = the Ingress host, NodePort of Traefik), its requests spread over the peers:
#      register, put, submit --wait; the transaction reaches every peer. The chart sets
#      ingressTrustedProxies to the pod network: the peers get MEDIACHAIN_API_TRUSTED_PROXIES;
#   8. backup and restore (e2e/suite/backup.sh; MEDIACHAIN_E2E_BACKUP=0 leaves it out): a
#      scheduled backup, every peer and volume deleted, a fresh resource bootstrapped from it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$E2E_DIR/suite/common.sh"
: "${KUBECONFIG:?KUBECONFIG must name the kubeconfig of the cluster}"
export KUBECONFIG
KUBECTL=${KUBECTL_BIN:-kubectl}
HELM=${HELM_BIN:-helm}
NS=${MEDIACHAIN_E2E_NAMESPACE:-mediachain-e2e}
RELEASE=mc-e2e
PULL=${MEDIACHAIN_E2E_IMAGE_PULL_POLICY:-Never}
WORK=$(mktemp -d)
k() { "$KUBECTL" -n "$NS" "$@"; }

cleanup() {
  local rc=$?
  # Helpers started in the background (kubectl proxy, port-forwards), by their pids.
  if [ -f "$WORK/pids" ]; then
    while read -r p; do kill "$p" 2>/dev/null || true; done <"$WORK/pids"
  fi
  if [ "$rc" != 0 ]; then
    log "failure: diagnostics"
    k get mcp,sts,pods,pvc,svc,ingress -o wide >&2 || true
    k get mcp sample -o jsonpath='{.status}' >&2 || true; echo >&2
    k get events --sort-by=.lastTimestamp 2>/dev/null | tail -30 >&2 || true
    log "--- operator log (tail)"
    k logs deploy/$RELEASE-mediachain-operator --tail=40 >&2 || true
    for p in $(k get pods -l app.kubernetes.io/instance=sample -o name 2>/dev/null) $(k get pods -o name | grep sample- 2>/dev/null); do
      log "--- $p log (tail)"; k logs "$p" --tail=15 2>&1 | cut -c1-300 >&2 || true
    done
  fi
  if [ "${MEDIACHAIN_E2E_KEEP:-0}" != 1 ]; then
    if [ -n "${MEDIACHAIN_E2E_INGRESS_IMAGE:-}" ]; then
      "$KUBECTL" delete ingressclass,clusterrole,clusterrolebinding "$NS-traefik" --ignore-not-found >/dev/null 2>&1 || true
    fi
    timeout 120 "$HELM" uninstall "$RELEASE" -n "$NS" --wait --timeout 90s >/dev/null 2>&1 || true
    timeout 120 "$KUBECTL" delete ns "$NS" --wait=true --timeout=100s >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# bg_url LOGFILE PATTERN CMD...: start CMD in the background, wait for PATTERN (with a
# 127.0.0.1:<port> in it) in its output, print http://127.0.0.1:<port>.
bg_url() {
  local logf=$1 pat=$2 port
  shift 2
  "$@" >"$logf" 2>&1 &
  echo $! >>"$WORK/pids"
  wait_for "'$pat' from: $*" 30 grep -q "$pat" "$logf" || { cat "$logf" >&2; return 1; }
  port=$(grep -o "$pat 127.0.0.1:[0-9]*" "$logf" | head -1 | sed 's/.*://')
  echo "http://127.0.0.1:$port"
}

"$KUBECTL" create namespace "$NS" >/dev/null
step "trust tower + principal Secret" tower "$WORK/net" 0
k create secret generic mediachain-principal --from-file="$WORK/net/principal.key" \
  --from-file="$WORK/net/principal.chain" --from-file=root.pub="$WORK/net/trust/root.pub" >/dev/null

install() {
  timeout 330 "$HELM" install "$RELEASE" "$REPO_ROOT/charts/mediachain-operator" -n "$NS" \
    --set replicaCount=1 --set image.tag="$IMAGE_TAG" --set image.pullPolicy="$PULL" \
    --set sampleNetwork.enabled=true --set sampleNetwork.replicas=3 \
    --set sampleNetwork.image.tag="$IMAGE_TAG" --set sampleNetwork.image.pullPolicy="$PULL" \
    --set sampleNetwork.storage.size=64Mi \
    --set sampleNetwork.consensus.blockInterval=500ms \
    --set sampleNetwork.consensus.registrationPowBits=12 \
    --set sampleNetwork.consensus.transactionPowBits=8 \
    --set sampleNetwork.targetConnectivity=2 \
    --set 'ingressTrustedProxies={10.244.0.0/16}' \
    --wait --timeout 300s >/dev/null
}
step "helm install $RELEASE (operator + sample network, images $IMAGE_TAG)" install

mcp_ready() {
  [ "$(k get mcp sample -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] &&
    [ "$(k get mcp sample -o jsonpath='{.status.readyReplicas}')" = "$1" ]
}
step "operator reconciles the sample network: MediachainPeer Ready, 3/3 peers" \
  wait_for "mcp/sample Ready with 3 ready peers" 300 mcp_ready 3
k get mcp sample >&2

PROXY=$(bg_url "$WORK/proxy.log" "Starting to serve on" "$KUBECTL" proxy --port=0)
pod_url() { echo "$PROXY/api/v1/namespaces/$NS/pods/$1:8080/proxy"; }
forward() { bg_url "$WORK/pf-$1.log" "Forwarding from" "$KUBECTL" -n "$NS" port-forward "pod/$1" :8080; }
committed_everywhere() {
  local tx=$1 n=$2 i
  for i in $(seq 0 $((n - 1))); do
    wait_for "sample-$i reports transaction $tx committed" 90 tx_committed_at "$(pod_url "sample-$i")" "$tx" || return 1
  done
}
same_height() { [ "$(head_height "$(pod_url "$1")")" = "$(head_height "$(pod_url "$2")")" ]; }

# part NAME: whether the optional part NAME runs (MEDIACHAIN_E2E_ONLY names the only one).
part() { [ -z "${MEDIACHAIN_E2E_ONLY:-}" ] || [ "$MEDIACHAIN_E2E_ONLY" = "$1" ]; }
only_skipped() { skipped "the suite's $1 part (MEDIACHAIN_E2E_ONLY=$MEDIACHAIN_E2E_ONLY)"; }

TX1=""
job1() {
  local url
  url=$(forward sample-0)
  TX1=$(client_job "$url" "$WORK/client" first) || return 1
  log "transaction $TX1 committed (client through port-forward to sample-0)"
}
step "client: register, put, submit --wait" job1
step "every peer has transaction 1" committed_everywhere "$TX1" 3

TX2=""
recover() {
  local uid url
  uid=$(k get pod sample-1 -o jsonpath='{.metadata.uid}')
  k delete pod sample-1 --wait=false >/dev/null
  url=$(forward sample-0)
  TX2=$(client_job "$url" "$WORK/client" second) || return 1
  log "transaction $TX2 committed while sample-1 was being replaced"
  recreated() { [ "$(k get pod sample-1 -o jsonpath='{.metadata.uid}')" != "$uid" ]; }
  wait_for "pod sample-1 recreated" 120 recreated || return 1
  wait_for "new pod sample-1 Ready" 180 k wait --for=condition=Ready pod/sample-1 --timeout=5s || return 1
  committed_everywhere "$TX2" 3 || return 1
  wait_for "sample-1 has transaction 1 (from its volume)" 60 tx_committed_at "$(pod_url sample-1)" "$TX1" || return 1
  wait_for "sample-1 journal height = sample-0's" 60 same_height sample-0 sample-1 || return 1
}
if part recovery; then
  step "delete pod sample-1: it recovers and syncs, nothing lost" recover
else
  only_skipped recovery
fi

. "$E2E_DIR/suite/rollout.sh"
SAMPLE_IMAGE=$PEER_IMAGE
TX3=""
scale_up() {
  k patch mcp sample --type merge -p '{"spec":{"replicas":4}}' >/dev/null
  # The new peer starts on the new template (it mounts its identity); the others then restart
  # on it one at a time (peer-aware rollout).
  wait_for "StatefulSet sample at 4 replicas, rolled out" 600 rolled_out 4 "$SAMPLE_IMAGE" || return 1
  wait_for "mcp/sample Ready with 4 ready peers" 240 mcp_ready 4 || return 1
  committed_everywhere "$TX1" 4 || return 1
  [ -z "$TX2" ] || committed_everywhere "$TX2" 4 || return 1
  wait_for "sample-3 journal height = sample-0's" 60 same_height sample-0 sample-3 || return 1
  local url
  url=$(forward sample-3)
  TX3=$(client_job "$url" "$WORK/client3" third) || return 1
  log "transaction $TX3 committed through the new peer sample-3"
  committed_everywhere "$TX3" 4
}
step "scale to 4 peers: the new peer syncs and serves" scale_up
k get mcp sample >&2
if ! part rollout; then
  only_skipped rollout
elif [ -n "${MEDIACHAIN_E2E_ROLLOUT_TAG:-}" ]; then
  step "an image change rolls through the 4 peers while a client writes: nothing confirmed is lost, confirmations never stop" image_rollout
  SAMPLE_IMAGE=mediachain-peer:$MEDIACHAIN_E2E_ROLLOUT_TAG
  k get mcp sample >&2
else
  skipped "the suite's image rollout part (no MEDIACHAIN_E2E_ROLLOUT_TAG: e2e/suite/kind.sh sets it)"
fi

. "$E2E_DIR/suite/rotation.sh"
if ! part rotation; then
  only_skipped rotation
elif [ "${MEDIACHAIN_E2E_ROTATION:-1}" != 0 ]; then
  step "the principal rotates in two phases while a client writes: no peer loses admission, confirmations never stop, nothing confirmed is lost" rotate_principal
  k get mcp sample >&2
else
  skipped "the suite's principal rotation part (MEDIACHAIN_E2E_ROTATION=0)"
fi

INGRESS_HOST=mediachain.e2e.test
through_ingress() {
  sed -e "s|__NS__|$NS|g" -e "s|__IMAGE__|$MEDIACHAIN_E2E_INGRESS_IMAGE|g" "$E2E_DIR/suite/traefik.yaml" |
    "$KUBECTL" apply -f - >/dev/null
  wait_for "Traefik Deployment rolled out (ping ready)" 180 k rollout status deploy/traefik --timeout=10s || return 1
  # The 4-peer sample gets the Ingress: Traefik spreads the client's requests over its peers
  # (challenge and registration, object puts and the submission may each reach another peer).
  k patch mcp sample --type merge \
    -p "{\"spec\":{\"ingress\":{\"host\":\"$INGRESS_HOST\",\"className\":\"$NS-traefik\"}}}" >/dev/null || return 1
  sample_ingress() { k get ingress sample >/dev/null 2>&1; }
  wait_for "Ingress sample (host $INGRESS_HOST) created by the operator" 120 sample_ingress || return 1
  # Behind the Ingress the peers trust the pod network (the chart's ingressTrustedProxies), so
  # each client has its own rate limit: the new setting rolls the peers one by one.
  trusted() {
    k get sts sample -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="MEDIACHAIN_API_TRUSTED_PROXIES")].value}' |
      grep -qx '10.244.0.0/16'
  }
  wait_for "the peers trust the ingress controller's network (MEDIACHAIN_API_TRUSTED_PROXIES)" 60 trusted || return 1
  wait_for "StatefulSet sample rolled out with it" 600 rolled_out 4 "$SAMPLE_IMAGE" || return 1
  wait_for "mcp/sample Ready with 4 ready peers" 240 mcp_ready 4 || return 1
  k get ingress sample >&2 || return 1
  local node_ip port net
  node_ip=$("$KUBECTL" get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
  port=$(k get svc traefik -o jsonpath='{.spec.ports[0].nodePort}')
  net=${MEDIACHAIN_E2E_DOCKER_NETWORK:-kind}
  cat >"$WORK/mc-container" <<SH
#!/bin/sh
exec docker run --rm --network $net --add-host $INGRESS_HOST:$node_ip -v $WORK:$WORK \
  --user $(id -u):$(id -g) --read-only mediachain-cli:$IMAGE_TAG "\$@"
SH
  chmod +x "$WORK/mc-container"
  local MC_BIN=$WORK/mc-container url=http://$INGRESS_HOST:$port
  log "client in a container on Docker network $net: $url -> node $node_ip:$port -> Traefik -> Ingress sample (4 peers)"
  wait_for "the Ingress routes $url to the sample peers (head answers)" 90 head_height "$url" || return 1
  TX4=$(client_job "$url" "$WORK/ingress-client" ingress) || return 1
  log "transaction $TX4 committed through the Ingress"
  # shellcheck disable=SC2034  # read by mc() in common.sh
  MC_BIN=$HOST_MC_BIN
  committed_everywhere "$TX4" 4
}
if ! part ingress; then
  only_skipped ingress
elif [ -n "${MEDIACHAIN_E2E_INGRESS_IMAGE:-}" ]; then
  TX4=""
  step "through the Ingress (Traefik): register, put, submit --wait; all peers have it" through_ingress
else
  skipped "the suite's Ingress part (no MEDIACHAIN_E2E_INGRESS_IMAGE: e2e/suite/kind.sh sets it unless MEDIACHAIN_E2E_INGRESS=0)"
fi
# Every mediachain_* metric the chart's alerts and dashboard use is exported by a live peer or
# the live operator (e2e/monitoring/check.sh).
live_metrics() {
  local op
  op=$(k get pods -l app.kubernetes.io/name=mediachain-operator,app.kubernetes.io/instance=$RELEASE \
    -o jsonpath='{.items[0].metadata.name}') || return 1
  # A malformed transaction: the rejection counter gets its first series.
  curl -s -m 10 -o /dev/null -X POST -H 'Content-Type: application/cbor' --data-binary 'not cbor' \
    "$(pod_url sample-0)/v1/transactions" || return 1
  bash "$E2E_DIR/monitoring/check.sh" metrics "$(pod_url sample-0)/metrics" \
    "$PROXY/api/v1/namespaces/$NS/pods/$op:8080/proxy/metrics"
}
if part metrics; then
  step "monitoring: the alerts' and dashboard's metrics exist on a live peer and operator" live_metrics
else
  only_skipped metrics
fi

. "$E2E_DIR/suite/backup.sh"
if ! part backup; then
  only_skipped backup
elif [ "${MEDIACHAIN_E2E_BACKUP:-1}" != 0 ]; then
  step "backup: spec.backup on sample; the CronJob's backup in status.lastBackup, its root the tip" back_up
  step "lose sample: every peer, identity and volume deleted" lose_everything
  step "restore a fresh sample from the backup (spec.bootstrap): the tip and every transaction are back" \
    restore 3 "$TX1" ${TX2:+"$TX2"} "$TX3" ${TX4:+"$TX4"}
  TX_AFTER=""
  step "the restored network commits a new transaction" commits_again 3
else
  skipped "the suite's backup-and-restore part (MEDIACHAIN_E2E_BACKUP=0)"
fi
log "suite passed: install, reconcile, transaction, pod recovery, scale-up${MEDIACHAIN_E2E_INGRESS_IMAGE:+, ingress}${TX_AFTER:+, backup and restore}"
