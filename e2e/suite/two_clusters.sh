#!/usr/bin/env bash
# One network across two clusters (issue 16 item 2; the runbook it follows is
# docs/multi-organisation.md): two organisations, A and B, each with its own kind cluster on one
# Docker network, its own operator (the chart) and its own Level-0 principal under one root.
#
#   1. trust material and the network's parameters (every peer an initial member; A runs 1 peer,
#      B 3: B's 3 of 4 seats are more than two thirds, so B alone commits and finalises);
#   2. each cluster: operator, principal and identity Secrets, the parameters ConfigMap, a
#      MediachainPeer exposing each peer on a NodePort of the kind node's Docker-network address;
#      the two publish the same parameters digest;
#   3. the organisations swap their status.externalSeeds into each other's spec.seeds; no peer
#      restarts for it (the operator puts them in the seed file the peers re-read); every peer's
#      log lists the other organisation's peers as admitted, every peer is connected to the 3
#      others, and each side's chain holds blocks the other side's peers committed;
#   4. a client writes through A's Ingress (Traefik); the transaction is final at every peer of B;
#   5. A's cluster is deleted (its node's volume directory is a host directory, an extraMount);
#      a client writes at B: committed and final at every peer of B;
#   6. A's cluster is created again from the same directory: the operator, the same Secrets, a
#      PersistentVolume over the kept directory bound to the claim the StatefulSet uses. alpha-0
#      starts from its volume (same PeerId; it receives fewer blocks than B's height), is Ready,
#      holds both transactions and reaches B's height; a write at A is final at B.
# Both clusters are deleted at the end, also on failure (after diagnostics). Every wait is
# bounded and names what it waited for.
#
#   bash e2e/suite/two_clusters.sh
#
# Environment: as e2e/README.md (MEDIACHAIN_E2E_CACHE, ...); MEDIACHAIN_SKIP_IMAGES=1 (the
# images of docker/build.sh exist already: e2e/ci.sh), MEDIACHAIN_IMAGE_TAG, MEDIACHAIN_CLI,
# MEDIACHAIN_TWO_CLUSTERS_PREFIX (cluster names <prefix>-a, <prefix>-b; default mc-org),
# MEDIACHAIN_E2E_KEEP=1 (leave both clusters for inspection).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$E2E_DIR/kind/docker.sh"
. "$E2E_DIR/suite/common.sh"
. "$E2E_DIR/suite/orgs.sh"
[ -f "$E2E_CACHE/tools.env" ] || bash "$E2E_DIR/tools.sh" all >/dev/null
# shellcheck disable=SC1091
. "$E2E_CACHE/tools.env"
# shellcheck disable=SC2034  # KUBECTL, HELM: read by orgs.sh
KUBECTL=$KUBECTL_BIN HELM=$HELM_BIN
WORK=$(mktemp -d)
TRUST=$WORK/trust
# shellcheck disable=SC2034
ORG_A_VOLUMES=$WORK/org-a-volumes
INGRESS_HOST=api.a.$NETWORK.test
declare -A UP=() PROXY_PID=()

stop_proxy() {
  [ -z "${PROXY_PID[$1]:-}" ] || kill "${PROXY_PID[$1]}" 2>/dev/null || true
  PROXY_PID[$1]=""
}
diagnostics() {
  local org p
  for org in "${!UP[@]}"; do
    log "--- organisation $org (${CLUSTER[$org]}): objects, events, logs"
    kc "$org" get mcp,sts,pods,pvc,svc,ingress -o wide >&2 || true
    kc "$org" get mcp "${RESOURCE[$org]}" -o jsonpath='{.status}' >&2 || true; echo >&2
    kc "$org" get events --sort-by=.lastTimestamp 2>/dev/null | tail -20 >&2 || true
    kc "$org" logs deploy/mc-org-mediachain-operator --tail=30 >&2 || true
    for p in $(kc "$org" get pods -l app.kubernetes.io/instance="${RESOURCE[$org]}" -o name 2>/dev/null); do
      log "--- $p log (tail)"; kc "$org" logs "$p" -c peer --tail=20 2>&1 | cut -c1-300 >&2 || true
    done
  done
}
cleanup() {
  local rc=$? org
  stop_proxy a
  stop_proxy b
  if [ -f "$WORK/pids" ]; then
    while read -r p; do kill "$p" 2>/dev/null || true; done <"$WORK/pids"
  fi
  [ "$rc" = 0 ] || diagnostics
  if [ "${MEDIACHAIN_E2E_KEEP:-0}" != 1 ]; then
    for org in a b; do
      timeout 120 "$KIND_BIN" delete cluster --name "${CLUSTER[$org]}" >/dev/null 2>&1 || true
    done
    # The peer wrote its volume as its own user: remove it as root.
    as_root rm -rf "$WORK" || true
  fi
  docker_down
  exit "$rc"
}
docker_up
trap cleanup EXIT

# start_proxy ORG: `kubectl proxy` to ORG's API server on a free port (PROXY[ORG]).
start_proxy() {
  local org=$1 logf=$WORK/proxy-$1.log
  "$KUBECTL" --kubeconfig "$(kubeconfig_of "$org")" proxy --port=0 >"$logf" 2>&1 &
  PROXY_PID[$org]=$!
  wait_for "kubectl proxy of ${CLUSTER[$org]}" 30 grep -q "Starting to serve on" "$logf" ||
    { cat "$logf" >&2; return 1; }
  # shellcheck disable=SC2034
  PROXY[$org]=http://127.0.0.1:$(grep -o 'Starting to serve on 127.0.0.1:[0-9]*' "$logf" | sed 's/.*://')
}
# forward ORG POD: a port-forward to the peer's API; prints its URL.
forward() {
  local logf=$WORK/pf-$1-$2.log port
  "$KUBECTL" --kubeconfig "$(kubeconfig_of "$1")" -n "$NS" port-forward "pod/$2" :8080 >"$logf" 2>&1 &
  echo $! >>"$WORK/pids"
  wait_for "port-forward to $2" 30 grep -q "Forwarding from" "$logf" || { cat "$logf" >&2; return 1; }
  port=$(grep -o 'Forwarding from 127.0.0.1:[0-9]*' "$logf" | head -1 | sed 's/.*://')
  echo "http://127.0.0.1:$port"
}
peers_of() { local i; for i in $(seq 0 $((ORG_PEERS[$1] - 1))); do echo "${RESOURCE[$1]}-$i"; done; }
final_at_org() {
  local org=$1 tx=$2 p
  for p in $(peers_of "$org"); do
    wait_for "$p (organisation $org) reports transaction $tx final" 180 tx_final_at "$(peer_url "$org" "$p")" "$tx" || return 1
  done
}

if [ "${MEDIACHAIN_SKIP_IMAGES:-0}" != 1 ]; then
  step "images (docker/build.sh)" bash "$REPO_ROOT/docker/build.sh"
fi
INGRESS_IMAGE=$(step "ingress controller image (e2e/suite/traefik.sh)" timeout 3600 bash "$E2E_DIR/suite/traefik.sh")

mkdir -p "$TRUST"
step "one root, principals A and B, the initial members, network.yaml" org_trust "$TRUST"

bring_up() {
  local org=$1
  UP[$org]=1
  org_cluster "$org"
  org_operator "$org"
  if [ "$org" = a ]; then
    sed -e "s|__NS__|$NS|g" -e "s|__IMAGE__|$INGRESS_IMAGE|g" "$E2E_DIR/suite/traefik.yaml" |
      kc a apply -f - >/dev/null
  fi
  org_peers "$org" '[]'
  wait_for "${RESOURCE[$org]}: status.externalSeeds lists its ${ORG_PEERS[$org]} peers" 120 all_exposed "$org"
  start_proxy "$org"
}
step "organisation A: kind cluster ${CLUSTER[a]}, operator, Secrets, parameters, alpha (1 peer)" bring_up a
step "organisation B: kind cluster ${CLUSTER[b]}, operator, Secrets, parameters, beta (3 peers)" bring_up b

same_digest() {
  local da db
  da=$(kc a get mcp alpha -o jsonpath='{.status.networkParametersDigest}')
  db=$(kc b get mcp beta -o jsonpath='{.status.networkParametersDigest}')
  log "parameters digest: A $da, B $db"
  [ -n "$da" ] && [ "$da" = "$db" ]
}
step "both organisations publish the same network parameters digest" same_digest

declare -A ID=()
for p in $(peers_of a); do ID[$p]=$(cat "$TRUST/a/$p.id"); done
for p in $(peers_of b); do ID[$p]=$(cat "$TRUST/b/$p.id"); done
TOTAL=$((ORG_PEERS[a] + ORG_PEERS[b]))
connected_to_all() { [ "$(metric "$1" mediachain_peers_connected)" = "$((TOTAL - 1))" ]; }

swap_seeds() {
  local before_a before_b seeds_a seeds_b
  # A lone peer is not ready before it reaches B: its seed list names it by its in-cluster name,
  # not by the address it advertises, so it waits for a peer to reach (docs/multi-organisation.md).
  started() { [ "$(kc a get pod alpha-0 -o jsonpath='{.status.containerStatuses[0].started}')" = true ]; }
  wait_for "alpha-0's peer container started" 300 started || return 1
  wait_for "beta Ready (3 peers)" 300 org_ready b || return 1
  before_a=$(pod_generations a)
  before_b=$(pod_generations b)
  seeds_a=$(external_seeds a)
  seeds_b=$(external_seeds b)
  log "A publishes $seeds_a, B publishes $seeds_b"
  set_seeds a "$seeds_b"
  set_seeds b "$seeds_a"
  local org p other q
  for org in a b; do
    other=$([ "$org" = a ] && echo b || echo a)
    for p in $(peers_of "$org"); do
      for q in $(peers_of "$other"); do
        wait_for "$p's log lists $q (${ID[$q]}) as admitted" 240 admitted "$org" "$p" "${ID[$q]}" || return 1
      done
      wait_for "$p connected to the $((TOTAL - 1)) other peers" 120 connected_to_all "$(peer_url "$org" "$p")" || return 1
    done
  done
  wait_for "alpha Ready" 120 org_ready a || return 1
  wait_for "beta Ready" 120 org_ready b || return 1
  [ "$(pod_generations a)" = "$before_a" ] || { log "A's peers restarted: $before_a -> $(pod_generations a)"; return 1; }
  [ "$(pod_generations b)" = "$before_b" ] || { log "B's peers restarted: $before_b -> $(pod_generations b)"; return 1; }
}
step "seeds swapped from each other's status.externalSeeds: every peer admits the other side's, none restarts" swap_seeds

TX1=""
through_ingress() {
  local port url
  port=$(kc a get svc traefik -o jsonpath='{.spec.ports[0].nodePort}')
  wait_for "Traefik ready" 180 kc a rollout status deploy/traefik --timeout=10s || return 1
  wait_for "Ingress alpha created by the operator" 120 kc a get ingress alpha || return 1
  cat >"$WORK/mc-container" <<SH
#!/bin/sh
exec docker run --rm --network kind --add-host $INGRESS_HOST:$(node_ip a) -v $WORK:$WORK \
  --user $(id -u):$(id -g) --read-only mediachain-cli:$IMAGE_TAG "\$@"
SH
  chmod +x "$WORK/mc-container"
  url=http://$INGRESS_HOST:$port
  # shellcheck disable=SC2034  # read by mc() in common.sh
  local MC_BIN=$WORK/mc-container
  wait_for "A's Ingress routes $url to alpha (head answers)" 120 head_height "$url" || return 1
  TX1=$(client_job "$url" "$WORK/client-a" ingress) || return 1
  log "transaction $TX1 committed through A's Ingress"
}
step "a client writes through A's Ingress (Traefik, node port of ${CLUSTER[a]})" through_ingress
step "the transaction is final at every peer of B" final_at_org b "$TX1"

cross_committed() {
  local org p other q c
  for org in a b; do
    other=$([ "$org" = a ] && echo b || echo a)
    p=${RESOURCE[$org]}-0
    c=$(committers "$(peer_url "$org" "$p")")
    for q in $(peers_of "$other"); do
      echo "$c" | grep -qx "${ID[$q]}" && continue 2
    done
    log "$p's chain holds no block committed by organisation $other's peers (committers: $(echo "$c" | tr '\n' ' '))"
    return 1
  done
}
step "each side's chain holds blocks the other side's peers committed" cross_committed

# alpha_volume: the local-path directory of alpha-0's claim (pvc-<uid>_<namespace>_<claim>).
alpha_volume() {
  local d
  for d in "$ORG_A_VOLUMES"/pvc-*_"${NS}"_data-alpha-0; do
    [ -d "$d" ] && basename "$d" && return 0
  done
  return 1
}
H_A=""
lose_a() {
  H_A=$(head_height "$(peer_url a alpha-0)")
  log "alpha-0 at height $H_A; deleting cluster ${CLUSTER[a]}"
  stop_proxy a
  timeout 180 "$KIND_BIN" delete cluster --name "${CLUSTER[a]}" >&2
  unset 'UP[a]'
  alpha_volume >/dev/null || { log "no volume of alpha-0 in $ORG_A_VOLUMES: $(ls "$ORG_A_VOLUMES")"; return 1; }
}
step "organisation A's cluster is deleted (its volume directory stays on the host)" lose_a

# write_at ORG POD NAME: a client registers at the peer (a port-forward) and writes; TX = its id.
TX=""
write_at() {
  local url
  url=$(forward "$1" "$2")
  TX=$(client_job "$url" "$WORK/client-$3" "$3") || return 1
  log "transaction $TX ($3) committed at $2"
}
step "B alone commits a transaction" write_at b beta-0 without-a
TX2=$TX
step "... and finalises it at every peer of B (3 of 4 seats)" final_at_org b "$TX2"

return_a() {
  local dir seeds
  dir=$(alpha_volume)
  UP[a]=1
  org_cluster a
  org_operator a
  restore_volume "$dir" data-alpha-0 64Mi
  seeds=$(external_seeds b)
  org_peers a "$seeds"
  wait_for "alpha: status.externalSeeds lists its peer" 120 all_exposed a || return 1
  start_proxy a
  # A's node may have another address now: B takes A's newly published seeds.
  set_seeds b "$(external_seeds a)"
  wait_for "alpha Ready again (admitted, synced)" 300 org_ready a || return 1
}
step "A's cluster is created again from the same volume directory, with the same Secrets" return_a

caught_up() {
  local url_a url_b h_b received
  url_a=$(peer_url a alpha-0)
  url_b=$(peer_url b beta-0)
  [ "$(curl -sf -m 10 "$url_a/v1/info" | jq -r .peer)" = "${ID[alpha-0]}" ] ||
    { log "alpha-0 runs another key than before"; return 1; }
  wait_for "alpha-0 has transaction $TX1 (written before it was lost)" 60 tx_committed_at "$url_a" "$TX1" || return 1
  wait_for "alpha-0 has transaction $TX2 (committed at B while A was away)" 120 tx_committed_at "$url_a" "$TX2" || return 1
  same() { [ "$(head_height "$url_a")" = "$(head_height "$url_b")" ]; }
  wait_for "alpha-0 at beta-0's height" 120 same || return 1
  h_b=$(head_height "$url_b")
  received=$(metric "$url_a" mediachain_blocks_received_total)
  log "alpha-0 was at $H_A, B at $h_b; alpha-0 received $received blocks since its start"
  # From its volume it lacked only the blocks above H_A; from an empty volume it would need all.
  [ -n "$received" ] && [ "$received" -le "$((h_b - H_A))" ] ||
    { log "alpha-0 received $received blocks: more than the $((h_b - H_A)) it lacked (did it start empty?)"; return 1; }
}
step "alpha-0 came back from its volume with its key and caught up with B" caught_up

step "a write at the returned A ..." write_at a alpha-0 after-return
step "... is final at every peer of B" final_at_org b "$TX"
log "two clusters passed: one network of two organisations, A lost and restored from its volumes"
