#!/usr/bin/env bash
# Build (once per version, cached) the Kubernetes tools the tests need, from Go modules only.
#
#   bash e2e/tools.sh [harness|kind|all|promtool|images|traefik]     (default: all)
#
# stdout: `export NAME=path` lines (use: eval "$(bash e2e/tools.sh)"); logs go to stderr.
# Also writes the same lines to $MEDIACHAIN_E2E_CACHE/<kube-version>/tools.env.
#   harness: what the workspace tests need: kube-apiserver, kube-controller-manager, etcd, kubectl
#            (Rust apiserver harness), ipfs (kubo: reads the peer's CAR exports in
#            peer/tests/backup.rs)
#   kind:    + kubeadm, kubelet, kube-scheduler, kube-proxy, kind, helm, promtool (checks and
#            unit-tests the chart's alerts: e2e/monitoring/check.sh; built without Prometheus's
#            service-discovery plugins, which it does not use)
#   promtool: promtool alone
#   images:  the Go programs of the kind node's images (pause, smoke, CoreDNS,
#            local-path-provisioner), for e2e/kind/node-image.sh
#   traefik: the suite's ingress controller (Traefik, ~13 min on a cold cache), for
#            e2e/suite/traefik.sh
#   (images and traefik need no Docker: .ci/run builds them in the background beside the
#   workspace tests, and the scripts that need them call this again and find them built. Both
#   print nothing on stdout and leave tools.env alone.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MODE=${1:-all}
# One build at a time per cache and part: .ci/run starts this script in the background while
# cargo builds, and the test script calls it again; the second call waits for the part it needs,
# then finds it cached. Each part has its own lock, so the tests wait for the harness's tools
# only, not for the kind tools built after them; `images` and `traefik` share one.
# locked NAME CMD...: run CMD holding the lock of part NAME.
locked() {
  local lock=$E2E_CACHE/.tools-$1.lock fd
  shift
  exec {fd}>"$lock"
  if ! flock -n "$fd"; then
    log "another e2e/tools.sh holds $lock (building into $E2E_CACHE): waiting for it"
    flock "$fd"
  fi
  "$@"
  exec {fd}>&-
}
LDFLAGS=$(kube_ldflags)

# k8s.io/kubernetes as a dependency: its go.mod replaces every k8s.io/* staging module with
# ./staging/src/..., which Go ignores for a dependency, so pin each to the published v0.x.
kube_module() {
  local dir=$E2E_CACHE/src/kubernetes
  if [ -f "$dir/.ready" ]; then echo "$dir"; return; fi
  mkdir -p "$dir"
  local kmod
  (cd "$dir" && printf 'module mediachain.local/e2e/kubebuild\n\ngo 1.23.0\n' >go.mod \
    && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >dl.json)
  kmod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' "$dir/dl.json")
  {
    printf 'module mediachain.local/e2e/kubebuild\n\ngo 1.23.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
    local m v
    for m in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$kmod"); do
      v=$(staging_version "$m") || continue
      printf '\t%s => %s %s\n' "$m" "$m" "$v"
    done
    printf ')\n'
  } >"$dir/go.mod.tmp"
  mv "$dir/go.mod.tmp" "$dir/go.mod"
  touch "$dir/.ready"
  echo "$dir"
}

# staging_version MODULE: KUBE_STAGING_VERSION if the module proxy has it, else the newest
# published patch of the same minor (a few staging modules lack some patch releases there).
staging_version() {
  local m=$1 v
  if go mod download "$m@$KUBE_STAGING_VERSION" >/dev/null 2>&1; then
    echo "$KUBE_STAGING_VERSION"; return
  fi
  v=$(go list -m -versions "$m" 2>/dev/null | tr ' ' '\n' | grep "^${KUBE_STAGING_VERSION%.*}\." | sort -V | tail -1)
  if [ -z "$v" ]; then
    log "note: no ${KUBE_STAGING_VERSION%.*}.x of $m on the module proxy (not needed unless imported)"
    return 1
  fi
  log "WARNING: $m@$KUBE_STAGING_VERSION is not on the module proxy; using $v"
  echo "$v"
}

# build_kube NAME...: build k8s.io/kubernetes/cmd/NAME for every NAME not yet in the cache.
build_kube() {
  local missing=() n dir
  for n in "$@"; do [ -x "$E2E_BIN/$n" ] || missing+=("k8s.io/kubernetes/cmd/$n"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  dir=$(kube_module)
  log "go build ${missing[*]}"
  (cd "$dir" && go build -trimpath -ldflags "$LDFLAGS" -o "$E2E_BIN/" "${missing[@]}")
}

build_etcd() {
  # etcd v3.5's main package is the root of go.etcd.io/etcd/server/v3.
  go_tool etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3
}

build_kind() {
  go_tool kind "sigs.k8s.io/kind@$KIND_VERSION" sigs.k8s.io/kind
}

build_helm() {
  go_tool helm "helm.sh/helm/v3@$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}

build_ipfs() {
  go_tool ipfs "github.com/ipfs/kubo@$KUBO_VERSION" github.com/ipfs/kubo/cmd/ipfs "" \
    "google.golang.org/genproto@$KUBO_GENPROTO_VERSION"
}

# `-tags remove_all_sd` (Prometheus's plugins/): no cloud service-discovery SDKs, which the rule
# checks and tests never use.
build_promtool() {
  GOFLAGS="$GOFLAGS -tags=remove_all_sd" go_tool promtool \
    "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" \
    github.com/prometheus/prometheus/cmd/promtool
}
harness() {
  step "build kube-apiserver kube-controller-manager kubectl" build_kube \
    kube-apiserver kube-controller-manager kubectl
  step "build etcd $ETCD_VERSION" build_etcd
  step "build ipfs (kubo $KUBO_VERSION)" build_ipfs
}

kind_tools() {
  step "build kubeadm kubelet kube-scheduler kube-proxy" build_kube \
    kubeadm kubelet kube-scheduler kube-proxy
  step "build kind $KIND_VERSION" build_kind
  step "build helm $HELM_VERSION" build_helm
  step "build promtool (prometheus module $PROMETHEUS_VERSION)" build_promtool
}

# Our own small Go programs (cheap to rebuild; the Go build cache makes it a no-op).
build_own_images() {
  local p
  for p in pause smoke; do
    (cd "$E2E_DIR/kind/images/$p" && go build -trimpath -ldflags "-s -w" -o "$E2E_BIN/$p" .)
  done
}

# As a dependency, Traefik's own `replace` directives (forks of go-http-auth, mux, minheap) do
# not apply: they are copied into the wrapper module's go.mod.
build_traefik() {
  local modver="github.com/traefik/traefik/v3@$TRAEFIK_VERSION" dir=$E2E_CACHE/src/traefik
  if [ -x "$E2E_BIN/traefik" ] && [ "$(cat "$E2E_BIN/.traefik.version" 2>/dev/null)" = "$modver" ]; then
    return 0
  fi
  mkdir -p "$dir"
  (cd "$dir" && printf 'module mediachain.local/e2e/traefik\n\ngo 1.23.0\n' >go.mod &&
    go mod download -json "$modver" >/dev/null &&
    sed -n '/^replace (/,/^)/p' "$(go env GOMODCACHE)/github.com/traefik/traefik/v3@$TRAEFIK_VERSION/go.mod" >>go.mod &&
    go get "$modver" &&
    go build -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
      -o "$E2E_BIN/traefik" github.com/traefik/traefik/v3/cmd/traefik)
  echo "$modver" >"$E2E_BIN/.traefik.version"
}

images() {
  step "build pause, smoke (e2e/kind/images)" build_own_images
  step "build coredns $COREDNS_VERSION" go_tool coredns \
    "github.com/coredns/coredns@$COREDNS_VERSION" github.com/coredns/coredns
  step "build local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION" go_tool local-path-provisioner \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION" \
    github.com/rancher/local-path-provisioner
}

case "$MODE" in
  harness) locked harness harness ;;
  kind | all) locked harness harness; locked kind kind_tools ;;
  promtool) locked kind step "build promtool (prometheus module $PROMETHEUS_VERSION)" build_promtool ;;
  images) locked images images; exit 0 ;;
  traefik) locked images step "build traefik $TRAEFIK_VERSION (Go module)" build_traefik; exit 0 ;;
  *) die "usage: $0 [harness|kind|all|promtool|images|traefik]" ;;
esac

env_file=$E2E_CACHE/tools.env
{
  echo "export MEDIACHAIN_E2E_CACHE=$E2E_CACHE_ROOT"
  echo "export KUBE_VERSION=$KUBE_VERSION"
  for pair in KUBE_APISERVER_BIN:kube-apiserver ETCD_BIN:etcd KUBECTL_BIN:kubectl \
    KUBEADM_BIN:kubeadm KUBELET_BIN:kubelet KIND_BIN:kind HELM_BIN:helm IPFS_BIN:ipfs \
    PROMTOOL_BIN:promtool; do
    var=${pair%%:*} bin=$E2E_BIN/${pair#*:}
    [ -x "$bin" ] && echo "export $var=$bin"
  done
} >"$env_file.$$"
mv "$env_file.$$" "$env_file"
log "tools env written to $env_file"
cat "$env_file"
