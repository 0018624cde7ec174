# shellcheck shell=bash
# Helpers of the two-cluster test (sourced by e2e/suite/two_clusters.sh after e2e/lib.sh and
# e2e/suite/common.sh): two organisations, A and B, each with its own kind cluster, Level-0
# principal and operator, forming one network (docs/multi-organisation.md is the runbook these
# steps follow).
#
# Organisation A runs MediachainPeer `alpha` (ORG_PEERS[a] peers) in cluster CLUSTER[a]; B runs
# `beta` in CLUSTER[b]. Both use namespace NS and network NETWORK.

NS=orgnet
NETWORK=orgnet
declare -A CLUSTER=([a]=${MEDIACHAIN_TWO_CLUSTERS_PREFIX:-mc-org}-a [b]=${MEDIACHAIN_TWO_CLUSTERS_PREFIX:-mc-org}-b)
declare -A RESOURCE=([a]=alpha [b]=beta)
# B holds 3 of the 4 seats: more than two thirds, so B alone keeps committing *and* finalising
# while A is away (a block needs one seated committer; finality needs votes of more than two
# thirds of the seats, docs/consensus.md). With 2 of 3, or 3 of 5, B would commit but nothing
# would become final until A returned.
declare -A ORG_PEERS=([a]=1 [b]=3)
declare -A PORT_BASE=([a]=30400 [b]=30500)

kubeconfig_of() { echo "$E2E_CACHE/kind-${CLUSTER[$1]}.kubeconfig"; }
# kc ORG ARGS...: kubectl on ORG's cluster, in the test's namespace.
kc() {
  local org=$1
  shift
  "$KUBECTL" --kubeconfig "$(kubeconfig_of "$org")" -n "$NS" "$@"
}
node_ip() {
  kc "$1" get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}'
}

# org_trust DIR: one root; principals a and b under it (Level 0); the initial members' keys and
# Level-1 chains (DIR/<org>/<resource>-<i>.{key,chain,id}); DIR/network.yaml naming all of them.
org_trust() {
  local dir=$1 org i id principal
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/root.passphrase"
  mc root init --dir "$dir/root" --passphrase-file "$dir/root.passphrase" >/dev/null
  for org in a b; do
    mkdir -p "$dir/$org"
    principal=$(mc key generate --out "$dir/$org/principal.key")
    mc cert issue --issuer-key "$dir/root/root.key" --passphrase-file "$dir/root.passphrase" \
      --subject "$principal" --level 0 --valid-for 90d --out "$dir/$org/principal.chain"
    for i in $(seq 0 $((ORG_PEERS[$org] - 1))); do
      local peer=$dir/$org/${RESOURCE[$org]}-$i
      id=$(mc key generate --out "$peer.key")
      mc cert issue --issuer-key "$dir/$org/principal.key" --issuer-chain "$dir/$org/principal.chain" \
        --subject "$id" --level 1 --valid-for 7d --out "$peer.chain"
      echo "$id" >"$peer.id"
    done
  done
  # The parameters file both organisations agree on (docs/network-parameters.md): every peer
  # above an initial member; fast blocks and cheap proof of work for the test.
  {
    echo "version: 1"
    echo "network: $NETWORK"
    echo "root: $(tr -d '[:space:]' <"$dir/root/root.pub")"
    echo "members:"
    for chain in "$dir"/a/*-[0-9]*.chain "$dir"/b/*-[0-9]*.chain; do
      echo "- |"
      sed 's/^/  /' "$chain"
    done
    printf 'consensus:\n  block-interval: 500ms\n  commit-timeout: 2s\n  commit-backoff: 500ms\n'
    printf '  transaction-pow-bits: 8\n  max-weight-per-principal: 3\n  epoch-length: 4\n'
  } >"$dir/network.yaml"
}

# org_cluster ORG: create ORG's kind cluster (A's volumes in $ORG_A_VOLUMES on the host) and load
# the images.
org_cluster() {
  local org=$1 out images=("$PEER_IMAGE" "$OPERATOR_IMAGE")
  if [ "$org" = a ]; then
    out=$(MEDIACHAIN_KIND_CLUSTER=${CLUSTER[a]} MEDIACHAIN_KIND_VOLUME_DIR=$ORG_A_VOLUMES \
      bash "$E2E_DIR/kind/cluster.sh" up)
    [ -z "${INGRESS_IMAGE:-}" ] || images+=("$INGRESS_IMAGE")
  else
    out=$(MEDIACHAIN_KIND_CLUSTER=${CLUSTER[b]} bash "$E2E_DIR/kind/cluster.sh" up)
  fi
  echo "$out" | grep -v '^export ' >&2 || true
  timeout 300 "$KIND_BIN" load docker-image "${images[@]}" --name "${CLUSTER[$org]}" >&2
}

# org_operator ORG: the operator by the chart (one replica), the principal Secret, the initial
# members' identity Secrets and the parameters ConfigMap (runbook steps 1-3).
org_operator() {
  local org=$1 dir=$TRUST i r=${RESOURCE[$1]}
  kc "$org" create namespace "$NS" >/dev/null
  timeout 330 "$HELM" install mc-org "$REPO_ROOT/charts/mediachain-operator" \
    --kubeconfig "$(kubeconfig_of "$org")" -n "$NS" \
    --set replicaCount=1 --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never \
    --set 'ingressTrustedProxies={10.244.0.0/16}' --wait --timeout 300s >/dev/null
  kc "$org" create secret generic principal --from-file="$dir/$org/principal.key" \
    --from-file="$dir/$org/principal.chain" --from-file=root.pub="$dir/root/root.pub" >/dev/null
  for i in $(seq 0 $((ORG_PEERS[$org] - 1))); do
    kc "$org" create secret generic "$r-$i-identity" --from-file=peer.key="$dir/$org/$r-$i.key" \
      --from-file=peer.chain="$dir/$org/$r-$i.chain" >/dev/null
    kc "$org" label secret "$r-$i-identity" app.kubernetes.io/name=mediachain-peer \
      app.kubernetes.io/instance="$r" app.kubernetes.io/managed-by=mediachain-operator \
      mediachain.io/ordinal="$i" >/dev/null
  done
  kc "$org" create configmap "$NETWORK-params" --from-file=network.yaml="$dir/network.yaml" >/dev/null
}

# org_peers ORG SEEDS_JSON: ORG's MediachainPeer: the shared parameters, each peer exposed on a
# node port of the kind node's address on the Docker network, A with an Ingress.
org_peers() {
  local org=$1 seeds=$2 ip spec
  ip=$(node_ip "$org")
  spec=$(jq -n --arg net "$NETWORK" --argjson n "${ORG_PEERS[$org]}" --arg image "$PEER_IMAGE" \
    --argjson base "${PORT_BASE[$org]}" --arg host "$ip" --argjson seeds "$seeds" '{
      network: $net, replicas: $n, image: $image, imagePullPolicy: "Never",
      trust: {principalSecretName: "principal"},
      networkParameters: {configMapName: ($net + "-params")},
      storage: {size: "64Mi"},
      exposure: {type: "NodePort", nodePortBase: $base, host: $host},
      seeds: $seeds,
      consensus: {registrationPowBits: 12},
      connectivity: {targetConnectivity: 2}}')
  if [ "$org" = a ]; then
    spec=$(echo "$spec" | jq --arg host "$INGRESS_HOST" --arg class "$NS-traefik" \
      '.ingress = {host: $host, className: $class}')
  fi
  jq -n --arg name "${RESOURCE[$org]}" --arg ns "$NS" --argjson spec "$spec" \
    '{apiVersion: "mediachain.io/v1alpha1", kind: "MediachainPeer",
      metadata: {name: $name, namespace: $ns}, spec: $spec}' | kc "$org" apply -f - >/dev/null
}

# external_seeds ORG: ORG's status.externalSeeds as a JSON array.
external_seeds() { kc "$1" get mcp "${RESOURCE[$1]}" -o json | jq -c '.status.externalSeeds // []'; }
all_exposed() { [ "$(external_seeds "$1" | jq length)" = "${ORG_PEERS[$1]}" ]; }
org_ready() {
  [ "$(kc "$1" get mcp "${RESOURCE[$1]}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] &&
    [ "$(kc "$1" get mcp "${RESOURCE[$1]}" -o jsonpath='{.status.readyReplicas}')" = "${ORG_PEERS[$1]}" ]
}
set_seeds() {
  kc "$1" patch mcp "${RESOURCE[$1]}" --type merge -p "{\"spec\":{\"seeds\":$2}}" >/dev/null
}
# pod_generations ORG: each peer pod's name, uid and peer container restarts (a restart changes it).
pod_generations() {
  kc "$1" get pods -l app.kubernetes.io/instance="${RESOURCE[$1]}" \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid}/{.status.containerStatuses[0].restartCount} {end}'
}

# restore_volume DIR CLAIM SIZE: a PersistentVolume over a kept local-path directory (on the node,
# under /var/local-path-provisioner) and the claim the StatefulSet will use, bound to each other.
restore_volume() {
  local dir=$1 claim=$2 size=$3
  kc a apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: restored-$claim}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  claimRef: {namespace: $NS, name: $claim}
  hostPath: {path: /var/local-path-provisioner/$dir, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $claim, namespace: $NS}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: standard
  volumeName: restored-$claim
  resources: {requests: {storage: $size}}
YAML
}

# Reading the peers: through `kubectl proxy` of each cluster (PROXY[a], PROXY[b]).
declare -A PROXY=()
peer_url() { echo "${PROXY[$1]}/api/v1/namespaces/$NS/pods/$2:8080/proxy"; }
tx_final_at() { MC_TIMEOUT=10 mc --peer "$1" status "$2" 2>/dev/null | grep -q '"state": "final"'; }
metric() { curl -sf -m 10 "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# committers URL: the PeerIds that committed the peer's canonical blocks (up to height 100).
committers() { curl -sf -m 10 "$1/v1/journal/blocks?from=1&limit=100" | jq -r '.blocks[].committer // empty' | sort -u; }
# admitted ORG POD ID: the peer's log says it admitted the peer ID.
admitted() { kc "$1" logs "$2" -c peer | grep '"peer admitted"' | grep -q "$3"; }
