#!/usr/bin/env bash
# Offline kind cluster from the locally built node image, and its smoke test.
#
#   bash e2e/kind/cluster.sh smoke   create the cluster, run the smoke test, delete the cluster
#   bash e2e/kind/cluster.sh up      create the cluster and leave it (and dockerd) running;
#                                    prints export lines (KUBECONFIG, DOCKER_HOST)
#   bash e2e/kind/cluster.sh down    delete the cluster
#   bash e2e/kind/cluster.sh up-smoke  create the cluster, run the smoke test, leave it running
#                                    (as `up`; e2e/suite/kind.sh then runs the suite on it)
#
# MEDIACHAIN_KIND_CLUSTER names the cluster (default mediachain-e2e). MEDIACHAIN_KIND_VOLUME_DIR,
# when set, is a host directory mounted at the node's /var/local-path-provisioner, where the
# PersistentVolumes live, so their data outlives the cluster (e2e/suite/two_clusters.sh).
#
# The smoke test: a pod from a locally built image (`kind load`) is scheduled and runs, gets a
# PersistentVolume from the local-path provisioner, serves HTTP behind a Service, and a second
# pod resolves the Service's name through CoreDNS and fetches the page through the ClusterIP.
# Cluster-creation time and memory are written to $E2E_CACHE/kind-metrics.txt.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$E2E_DIR/kind/docker.sh"
. "$E2E_DIR/kind/node-image.sh"

MODE=${1:-smoke}
CLUSTER=${MEDIACHAIN_KIND_CLUSTER:-mediachain-e2e}
KUBECONFIG_FILE=$E2E_CACHE/kind-$CLUSTER.kubeconfig
. "$E2E_CACHE/tools.env"
KIND=$KIND_BIN
KUBECTL=$KUBECTL_BIN
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

CREATED=""
cleanup() {
  local rc=$?
  if [ -n "$CREATED" ] && [ "$MODE" != up ] && { [ "$MODE" != up-smoke ] || [ "$rc" != 0 ]; }; then
    if [ "$rc" != 0 ]; then
      log "failure: collecting diagnostics"
      k get nodes,pods,pvc,pv,svc -A -o wide >&2 || true
      k get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -40 >&2 || true
      "$KIND" export logs "$E2E_CACHE/kind-logs" --name "$CLUSTER" >/dev/null 2>&1 &&
        log "kind logs exported to $E2E_CACHE/kind-logs" || true
    fi
    "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  [ "$MODE" = up ] || [ "$MODE" = up-smoke ] || docker_down
  exit "$rc"
}

create_cluster() {
  "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  cat >"$WORK/kind-config.yaml" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # Pod network: the node image's static ptp CNI config (see e2e/README.md).
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
  apiServerAddress: 127.0.0.1
nodes:
  - role: control-plane
EOF
  # The local-path provisioner's volumes in a host directory, so that they outlive the node: a
  # cluster deleted and created again with the same directory finds its volumes' data.
  if [ -n "${MEDIACHAIN_KIND_VOLUME_DIR:-}" ]; then
    mkdir -p "$MEDIACHAIN_KIND_VOLUME_DIR"
    printf '    extraMounts:\n      - {hostPath: %s, containerPath: /var/local-path-provisioner}\n' \
      "$MEDIACHAIN_KIND_VOLUME_DIR" >>"$WORK/kind-config.yaml"
  fi
  local t0
  t0=$(date +%s)
  CREATED=1
  "$KIND" create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config "$WORK/kind-config.yaml" \
    --kubeconfig "$KUBECONFIG_FILE" --wait 300s
  local secs=$(($(date +%s) - t0))
  wait_for "all kube-system pods Ready" 180 k wait --for=condition=Ready pods --all -n kube-system --timeout=5s
  local all=$(($(date +%s) - t0)) node_mem
  # Figures only: a failing `docker stats` must not fail the cluster.
  node_mem=$(docker stats --no-stream --format '{{.MemUsage}}' "$CLUSTER-control-plane") || node_mem=unknown
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "kind create cluster --wait (control plane up, node Ready): ${secs}s"
    echo "until every kube-system pod is Ready: ${all}s"
    echo "node container memory (docker stats) then: $node_mem"
    echo "host memory (free -m) then: $(free -m | awk '/^Mem:/ {print "used " $3 " MiB of " $2}')"
  } | tee "$E2E_CACHE/kind-metrics.txt" >&2
}

smoke_test() {
  step "kind load docker-image mediachain.local/e2e-smoke:1" \
    "$KIND" load docker-image mediachain.local/e2e-smoke:1 --name "$CLUSTER"
  k apply -f - <<'EOF'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: smoke-data }
spec:
  accessModes: [ReadWriteOnce]
  resources: { requests: { storage: 16Mi } }
---
apiVersion: v1
kind: Pod
metadata: { name: smoke-server, labels: { app: smoke } }
spec:
  containers:
    - name: httpd
      image: mediachain.local/e2e-smoke:1
      imagePullPolicy: Never
      command: [smoke, serve, -dir, /data, -addr, ":8080"]
      ports: [{ containerPort: 8080 }]
      readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 2 }
      volumeMounts: [{ name: data, mountPath: /data }]
  volumes:
    - name: data
      persistentVolumeClaim: { claimName: smoke-data }
---
apiVersion: v1
kind: Service
metadata: { name: smoke }
spec:
  selector: { app: smoke }
  ports: [{ port: 80, targetPort: 8080 }]
EOF
  wait_for "pod smoke-server Ready (scheduled, PV mounted, httpd up)" 180 \
    k wait --for=condition=Ready pod/smoke-server --timeout=5s
  local phase pv ip
  phase=$(k get pvc smoke-data -o jsonpath='{.status.phase}')
  pv=$(k get pvc smoke-data -o jsonpath='{.spec.volumeName}')
  [ "$phase" = Bound ] || die "PVC smoke-data is $phase, not Bound"
  log "PVC smoke-data Bound to PersistentVolume $pv"
  ip=$(k get svc smoke -o jsonpath='{.spec.clusterIP}')
  # Resolve through CoreDNS, then fetch through the Service's ClusterIP (kube-proxy).
  k run smoke-client --image=mediachain.local/e2e-smoke:1 --image-pull-policy=Never \
    --restart=Never --command -- smoke check -name smoke.default.svc.cluster.local \
    -want-ip "$ip" -expect 'hello from smoke-server on the PV' -tries 30
  wait_for "pod smoke-client to finish" 150 sh -c \
    "$KUBECTL --kubeconfig $KUBECONFIG_FILE get pod smoke-client -o jsonpath='{.status.phase}' | grep -qE 'Succeeded|Failed'"
  local out
  out=$(k logs smoke-client)
  echo "$out" | sed 's/^/  smoke-client| /' >&2
  echo "$out" | grep -q DNS-OK || die "DNS: smoke.default.svc.cluster.local did not resolve to $ip"
  echo "$out" | grep -q 'HTTP-OK hello from smoke-server on the PV' || die "HTTP through Service $ip failed"
  [ "$(k get pod smoke-client -o jsonpath='{.status.phase}')" = Succeeded ] || die "smoke-client failed"
  log "smoke test passed: scheduled pod, PV $pv, Service $ip, DNS"
}

docker_up
trap cleanup EXIT
case "$MODE" in
  smoke)
    main >/dev/null
    step "kind create cluster ($NODE_IMAGE)" create_cluster
    step "smoke test" smoke_test
    ;;
  up)
    main >/dev/null
    step "kind create cluster ($NODE_IMAGE)" create_cluster
    echo "export DOCKER_HOST=${DOCKER_HOST:-}"
    echo "export KUBECONFIG=$KUBECONFIG_FILE"
    ;;
  up-smoke)
    main >/dev/null
    step "kind create cluster ($NODE_IMAGE)" create_cluster
    step "smoke test" smoke_test
    echo "export DOCKER_HOST=${DOCKER_HOST:-}"
    echo "export KUBECONFIG=$KUBECONFIG_FILE"
    ;;
  down)
    "$KIND" delete cluster --name "$CLUSTER"
    ;;
  *) die "usage: $0 [smoke|up|up-smoke|down]" ;;
esac
