# shellcheck shell=bash
# The suite's backup-and-restore part (sourced by e2e/suite/suite.sh after the transactions it
# committed on `sample`; uses its helpers k, mcp_ready, pod_url, forward, committed_everywhere,
# client_job and the transaction ids TX1.. it recorded):
#
#   1. a PersistentVolumeClaim for backups; `spec.backup` (every minute, keep 3) on `sample`;
#      the operator's CronJob backs the journal up: status.lastBackup reports a height at least
#      the tip's after the last transaction, and the CAR file's root is that block;
#   2. backups suspended; the resource deleted: every peer, identity and volume gone;
#   3. a fresh `sample` (same network and principal, new keys) with `spec.bootstrap` from the
#      backup claim's latest.car: every peer imports it in its init container, becomes Ready, has
#      the backup's block at its height and every confirmed transaction; a new transaction
#      commits on every peer.

# The tip after the transactions, the backup's height and root.
BACKUP_HEIGHT=""
BACKUP_ROOT=""
backup_claim() {
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: sample-backups}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 128Mi}}
YAML
}
last_backup_at_least() {
  local h
  h=$(k get mcp sample -o jsonpath='{.status.lastBackup.height}')
  [ -n "$h" ] && [ "$h" -ge "$1" ]
}
block_at() { curl -sf -m 10 "$1/v1/journal/blocks?from=$2&limit=1" | jq -r '.blocks[0].cid'; }

back_up() {
  local tip
  tip=$(head_height "$(pod_url sample-0)") || return 1
  backup_claim || return 1
  k patch mcp sample --type merge \
    -p '{"spec":{"backup":{"schedule":"*/1 * * * *","keep":3,"claimName":"sample-backups"}}}' >/dev/null || return 1
  wait_for "CronJob sample-backup created by the operator" 60 k get cronjob sample-backup || return 1
  wait_for "status.lastBackup at height >= $tip (the tip after the transactions)" 240 last_backup_at_least "$tip" || {
    k get jobs,pods -l app.kubernetes.io/name=mediachain-backup >&2
    k get mcp sample -o jsonpath='{.status.conditions}' >&2
    return 1
  }
  BACKUP_HEIGHT=$(k get mcp sample -o jsonpath='{.status.lastBackup.height}')
  BACKUP_ROOT=$(k get mcp sample -o jsonpath='{.status.lastBackup.root}')
  [ "$(k get mcp sample -o jsonpath='{.status.conditions[?(@.type=="BackupFailing")].status}')" = False ] || return 1
  [ "$(block_at "$(pod_url sample-0)" "$BACKUP_HEIGHT")" = "$BACKUP_ROOT" ] || {
    log "the backup's root $BACKUP_ROOT is not sample-0's block at height $BACKUP_HEIGHT"
    return 1
  }
  log "backup $(k get mcp sample -o jsonpath='{.status.lastBackup.file}') at height $BACKUP_HEIGHT (root $BACKUP_ROOT, $(k get mcp sample -o jsonpath='{.status.lastBackup.sizeBytes}') bytes)"
  k get mcp sample >&2
  # No backup may run while the network is gone (it would fail, correctly, but noisily).
  k patch mcp sample --type merge -p '{"spec":{"backup":{"suspend":true}}}' >/dev/null || return 1
  no_active_backup() { [ -z "$(k get jobs -l app.kubernetes.io/name=mediachain-backup -o jsonpath='{.items[?(@.status.active)].metadata.name}')" ]; }
  wait_for "no backup job running" 120 no_active_backup
}

lose_everything() {
  k delete mcp sample --wait=true --timeout=120s >/dev/null || return 1
  gone() {
    [ -z "$(k get pods -l app.kubernetes.io/name=mediachain-peer,app.kubernetes.io/instance=sample -o name)" ] &&
      [ -z "$(k get pvc -l app.kubernetes.io/instance=sample -o name)" ] &&
      [ -z "$(k get secrets -l app.kubernetes.io/instance=sample -o name)" ]
  }
  wait_for "every peer, volume and identity of sample deleted" 180 gone || {
    k get pods,pvc,secrets -l app.kubernetes.io/instance=sample >&2
    return 1
  }
}

restore() {
  local n=$1 i tx
  shift
  k apply -f - >/dev/null <<YAML || return 1
apiVersion: mediachain.io/v1alpha1
kind: MediachainPeer
metadata: {name: sample}
spec:
  network: samplenet
  replicas: $n
  image: $PEER_IMAGE
  imagePullPolicy: $PULL
  trust: {principalSecretName: mediachain-principal}
  storage: {size: 64Mi}
  consensus: {blockInterval: 500ms, registrationPowBits: 12, transactionPowBits: 8}
  connectivity: {targetConnectivity: 2}
  bootstrap:
    file: {claimName: sample-backups, path: latest.car}
YAML
  wait_for "restored mcp/sample Ready with $n ready peers" 360 mcp_ready "$n" || return 1
  k logs sample-0 -c bootstrap | grep -q "^imported /bootstrap/latest.car: tip $BACKUP_ROOT at height $BACKUP_HEIGHT" || {
    log "sample-0's init container did not import the backup:"; k logs sample-0 -c bootstrap >&2; return 1
  }
  for i in $(seq 0 $((n - 1))); do
    [ "$(block_at "$(pod_url "sample-$i")" "$BACKUP_HEIGHT")" = "$BACKUP_ROOT" ] || {
      log "sample-$i has not the backup's block $BACKUP_ROOT at height $BACKUP_HEIGHT"; return 1
    }
  done
  for tx in "$@"; do committed_everywhere "$tx" "$n" || return 1; done
}

commits_again() {
  local n=$1 url
  url=$(forward sample-0)
  TX_AFTER=$(client_job "$url" "$WORK/client-restored" restored) || return 1
  log "transaction $TX_AFTER committed on the restored network"
  committed_everywhere "$TX_AFTER" "$n"
}
