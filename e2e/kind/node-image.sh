#!/usr/bin/env bash
# Build, without pulling anything, a kind node image equivalent to kindest/node for KUBE_VERSION:
#   1. root filesystem: debootstrap of Debian (systemd, containerd, runc, CNI plugins, iptables)
#      from the mirror apt is configured with, imported with `docker import`;
#   2. base image: kind's own images/base files (entrypoint, systemd units, kubelet drop-ins) from
#      the sigs.k8s.io/kind Go module, adapted to Debian's containerd 1.6;
#   3. images the cluster runs, each FROM scratch with Go binaries built from their modules:
#      kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy (on the base rootfs: it
#      needs iptables), etcd, CoreDNS, pause, local-path-provisioner + its busybox helper, and
#      the smoke test's own workload (e2e/kind/images/smoke);
#   4. node image: base + kubeadm/kubelet/kubectl + /kind/version + manifests, with every image
#      imported into the node's containerd, committed (what `kind build node-image` does).
# Needs a Docker engine (DOCKER_HOST) and the tools from e2e/tools.sh. Prints the node image name.
# Everything is cached: an image is rebuilt only when its inputs (hash in the tag) change.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$E2E_DIR/kind/docker.sh"
export DOCKER_BUILDKIT=0

# kind's source tree in the Go module cache; the cache may have been pruned since tools.sh built
# kind (its binary is then still current), so download the module again when it is missing.
kind_source_dir() {
  (cd "$E2E_CACHE/src/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)
}
KIND_SRC=$(kind_source_dir)
if [ -z "$KIND_SRC" ] || [ ! -d "$KIND_SRC/pkg/build/nodeimage" ]; then
  log "kind's module source is not in the Go module cache: downloading it again"
  (cd "$E2E_CACHE/src/kind" && go mod download sigs.k8s.io/kind) >&2
  KIND_SRC=$(kind_source_dir)
fi
[ -d "$KIND_SRC/pkg/build/nodeimage" ] || die "kind's module source not found (go list gave '$KIND_SRC')"
NODE_IMAGE_SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
WORK=$E2E_CACHE/node-build
mkdir -p "$WORK"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# kind's image names for its CNI and storage add-ons (constants in its node-image builder).
kind_const() { sed -n "s/^const $1 = \"\(.*\)\"/\1/p" "$KIND_SRC"/pkg/build/nodeimage/*.go; }
STORAGE_PROVISIONER_IMAGE=$(kind_const storageProvisionerImage)
STORAGE_HELPER_IMAGE=$(kind_const storageHelperImage)
ETCD_IMAGE="registry.k8s.io/etcd:${ETCD_VERSION#v}-0"
PAUSE_IMAGE="registry.k8s.io/pause:$PAUSE_VERSION"
COREDNS_IMAGE="registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
RESTRICTED=$(host_missing_caps)

# The Debian mirror apt uses (deb822 .sources or one-line sources.list), never hard-coded.
apt_mirror() {
  local m
  # Either file kind may be absent (grep then fails): not an error until neither names a mirror.
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1) || true
  [ -n "$m" ] || m=$(grep -hsE '^deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; exit}}' | grep -v security | head -1) || true
  [ -n "$m" ] || die "cannot find a Debian mirror in the apt configuration"
  echo "$m"
}

NODE_PACKAGES=systemd,systemd-sysv,dbus,iproute2,iptables,nftables,conntrack,ethtool,util-linux,mount,kmod,libseccomp2,procps,ca-certificates,containerd,runc,containernetworking-plugins,jq,bash,pigz,socat
ROOTFS_TAR=$E2E_CACHE_ROOT/rootfs/$NODE_DEBIAN_SUITE-$(echo "$NODE_PACKAGES" | sha256sum | cut -c1-12).tar
ROOTFS_IMAGE=mediachain.local/kind-rootfs:$NODE_DEBIAN_SUITE-$(basename "$ROOTFS_TAR" .tar | sed 's/.*-//')

build_rootfs() {
  if [ ! -f "$ROOTFS_TAR" ]; then
    command -v debootstrap >/dev/null ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
    local mirror dir
    mirror=$(apt_mirror)
    dir=$(mktemp -d "$WORK/rootfs.XXXXXX")
    log "debootstrap $NODE_DEBIAN_SUITE from apt's mirror $mirror"
    debootstrap --variant=minbase --include="$NODE_PACKAGES" "$NODE_DEBIAN_SUITE" "$dir" "$mirror" \
      >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log" >&2; return 1; }
    # Slim it: apt lists, docs and caches are not needed in a node.
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/usr/share/doc/* \
      "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
    mkdir -p "$(dirname "$ROOTFS_TAR")"
    tar -C "$dir" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$dir"
  fi
  have_image "$ROOTFS_IMAGE" || docker import "$ROOTFS_TAR" "$ROOTFS_IMAGE" >/dev/null
}

# Base image = kind's images/base/Dockerfile "base" stage, on our rootfs, with Debian's
# containerd 1.6 / runc / CNI plugins instead of the ones kind compiles.
build_base() {
  local ctx=$WORK/base
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -r "$KIND_SRC/images/base/files" "$ctx/files"
  chmod -R u+w "$ctx"
  cp "$E2E_DIR/kind/runc-wrapper" "$ctx/runc-wrapper"
  # containerd 1.6 config (version 2). No fuse-overlayfs proxy plugin (not installed).
  # Restricted host: without CAP_SYS_RESOURCE nothing in the node may lower oom_score_adj, which
  # the kubelet asks for (-998 for pause/static pods); restrict_oom_score_adj clamps it to
  # containerd's own value (what kind's entrypoint does for rootless nodes).
  {
    cat <<EOF
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  tolerate_missing_hugepages_controller = true
  restrict_oom_score_adj = $([ -n "$RESTRICTED" ] && echo true || echo false)
[plugins."io.containerd.grpc.v1.cri".containerd]
  discard_unpacked_layers = true
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  base_runtime_spec = "/etc/containerd/cri-base.json"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
EOF
    # Restricted host only: privileged pods need the same capability filter as the node.
    [ -n "$RESTRICTED" ] && echo '    BinaryName = "/usr/local/sbin/runc-wrapper"'
    cat <<EOF
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
EOF
  } >"$ctx/files/etc/containerd/config.toml"
  # Pod network for a single node: Debian's ptp + host-local + portmap CNI plugins with a static
  # config (kind's kindnetd is not published as a Go module; see README). ipMasq: traffic from a
  # pod to an address outside the pod network leaves with the node's address, as kindnetd does;
  # without it a pod cannot reach another cluster's node (e2e/suite/two_clusters.sh): the reply
  # would be addressed to a pod address of the other cluster, which uses the same pod network.
  mkdir -p "$ctx/cni"
  cat >"$ctx/cni/10-mediachain-ptp.conflist" <<'EOF'
{
  "cniVersion": "0.4.0",
  "name": "mediachain-ptp",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.244.0.0/24" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      },
      "mtu": 1500
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  cat >"$ctx/Dockerfile" <<EOF
FROM $ROOTFS_IMAGE
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
COPY runc-wrapper /usr/local/sbin/runc-wrapper
COPY cni/ /etc/cni/net.d/
RUN chmod 0755 /usr/local/bin/* /kind/bin/* /usr/local/sbin/runc-wrapper \\
    && ln -sf /usr/bin/containerd /usr/local/bin/containerd \\
    && ln -sf /usr/bin/ctr /usr/local/bin/ctr \\
    && mkdir -p /opt/cni/bin && for p in /usr/lib/cni/*; do ln -sf "\$p" /opt/cni/bin/; done \\
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \\
    && rm -f /lib/systemd/system/multi-user.target.wants/* \\
    && rm -f /etc/systemd/system/*.wants/* \\
    && rm -f /lib/systemd/system/local-fs.target.wants/* \\
    && rm -f /lib/systemd/system/sockets.target.wants/*udev* \\
    && rm -f /lib/systemd/system/sockets.target.wants/*initctl* \\
    && rm -f /lib/systemd/system/basic.target.wants/* \\
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
    && systemctl mask systemd-binfmt.service \\
    && mkdir -p /etc/kubernetes/manifests \\
    && ctr oci spec \\
       | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
       | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
EOF
  local tag
  tag=mediachain.local/kind-base:$(tar -C "$ctx" -cf - --sort=name --mtime=@0 --owner=0 --group=0 . |
    sha256sum | cut -c1-12)
  have_image "$tag" || docker build -q -t "$tag" "$ctx" >/dev/null
  BASE_IMAGE=$tag
}

# scratch_image TAG BINARY...: FROM scratch image with the binaries in /usr/local/bin.
scratch_image() {
  local tag=$1 ctx
  shift
  ctx=$WORK/img-$(echo "$tag" | tr '/:' '__')
  rm -rf "$ctx" && mkdir -p "$ctx/usr/local/bin" "$ctx/tmp" "$ctx/etc"
  cp "$@" "$ctx/usr/local/bin/"
  echo 'root:x:0:0:root:/root:/sbin/nologin' >"$ctx/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/sbin/nologin' >>"$ctx/etc/passwd"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY . /
ENV PATH=/usr/local/bin:/usr/bin:/bin
EOF
  local entry
  entry=$(basename "$1")
  echo "ENTRYPOINT [\"/usr/local/bin/$entry\"]" >>"$ctx/Dockerfile"
  rm -f "$ctx/Dockerfile.tmp"
  docker build -q -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# busybox_image TAG: busybox-static (Debian) for sh, mkdir, rm, chmod (local-path helper pods).
# (Its wget/nc segfault in a scratch image: static glibc cannot load NSS for getaddrinfo.)
busybox_image() {
  local tag=$1 ctx
  ctx=$WORK/img-$(echo "$tag" | tr '/:' '__')
  rm -rf "$ctx" && mkdir -p "$ctx/bin" "$ctx/tmp" "$ctx/etc"
  [ -x /bin/busybox ] ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static >&2
  file -L /bin/busybox 2>/dev/null | grep -q 'dynamically' && die "/bin/busybox is not static (install busybox-static)"
  cp /bin/busybox "$ctx/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$ctx/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$ctx/etc/passwd"
  printf 'FROM scratch\nCOPY . /\nENV PATH=/bin\nCMD ["/bin/sh"]\n' >"$ctx/Dockerfile"
  docker build -q -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_images() {
  local b=$E2E_BIN k=$KUBE_VERSION
  # The Go programs: e2e/tools.sh images (cached; .ci/run builds them in the background).
  bash "$E2E_DIR/tools.sh" images >&2

  IMAGES=(
    "registry.k8s.io/kube-apiserver:$k" "registry.k8s.io/kube-controller-manager:$k"
    "registry.k8s.io/kube-scheduler:$k" "registry.k8s.io/kube-proxy:$k"
    "$ETCD_IMAGE" "$COREDNS_IMAGE" "$PAUSE_IMAGE"
    "$STORAGE_PROVISIONER_IMAGE" "$STORAGE_HELPER_IMAGE" "mediachain.local/e2e-smoke:1"
  )
  local n
  for n in kube-apiserver kube-controller-manager kube-scheduler; do
    scratch_image "registry.k8s.io/$n:$k" "$b/$n"
  done
  # kube-proxy programs iptables: give it the node rootfs (iptables, conntrack) as its base.
  local ctx=$WORK/img-kube-proxy
  rm -rf "$ctx" && mkdir -p "$ctx" && cp "$b/kube-proxy" "$ctx/"
  printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENTRYPOINT ["/usr/local/bin/kube-proxy"]\n' \
    "$ROOTFS_IMAGE" >"$ctx/Dockerfile"
  docker build -q -t "registry.k8s.io/kube-proxy:$k" "$ctx" >/dev/null
  rm -rf "$ctx"
  scratch_image "$ETCD_IMAGE" "$b/etcd"
  scratch_image "$COREDNS_IMAGE" "$b/coredns"
  scratch_image "$PAUSE_IMAGE" "$b/pause"
  scratch_image "$STORAGE_PROVISIONER_IMAGE" "$b/local-path-provisioner"
  busybox_image "$STORAGE_HELPER_IMAGE"
  # The smoke test's workload image, built locally (loaded with `kind load`, not preloaded).
  scratch_image "mediachain.local/e2e-smoke:1" "$b/smoke"
}

# Node image: what kind's buildImage does (sigs.k8s.io/kind pkg/build/nodeimage), minus pulls.
build_node() {
  local id=mediachain-kind-build-$$
  docker rm -f "$id" >/dev/null 2>&1 || true
  docker run -d --name "$id" --entrypoint=sleep --security-opt seccomp=unconfined \
    "$BASE_IMAGE" infinity >/dev/null
  # shellcheck disable=SC2064
  trap "docker rm -f $id >/dev/null 2>&1 || true" RETURN
  local bin
  for bin in kubeadm kubelet kubectl; do
    docker cp "$E2E_BIN/$bin" "$id:/usr/bin/$bin"
  done
  docker exec "$id" sh -c "chown root:root /usr/bin/kube* && chmod 0755 /usr/bin/kube*"
  docker exec "$id" sh -c "mkdir -p /kind/manifests && echo $KUBE_VERSION > /kind/version"
  # kind's default storage manifest (local-path-provisioner), taken from kind's own source.
  python3 - "$KIND_SRC/pkg/build/nodeimage/const_storage.go" "$STORAGE_PROVISIONER_IMAGE" \
    "$STORAGE_HELPER_IMAGE" >"$WORK/default-storage.yaml" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r'const defaultStorageManifest = `(.*?)^`', src, re.S | re.M)
text = m.group(1).replace("` + storageProvisionerImage + `", sys.argv[2])
text = text.replace("` + storageHelperImage + `", sys.argv[3])
assert "`" not in text
sys.stdout.write(text)
EOF
  docker cp "$WORK/default-storage.yaml" "$id:/kind/manifests/default-storage.yaml"
  docker exec "$id" kubeadm config images list --kubernetes-version "$KUBE_VERSION" \
    >"$WORK/kubeadm-images.txt"
  local img
  while read -r img; do
    case " ${IMAGES[*]} " in *" $img "*) ;; *) die "kubeadm wants $img, which is not built here" ;; esac
  done <"$WORK/kubeadm-images.txt"

  docker exec -d "$id" sh -c 'containerd >/var/log/containerd-build.log 2>&1'
  wait_for "containerd in the build container" 60 docker exec "$id" ctr version
  for img in "${IMAGES[@]}"; do
    [ "$img" = mediachain.local/e2e-smoke:1 ] && continue
    docker save "$img" | docker exec -i "$id" ctr --namespace=k8s.io images import \
      --all-platforms --no-unpack --digests - >/dev/null
  done
  docker exec "$id" ctr --namespace=k8s.io images ls -q | grep -v '^sha256:' >"$WORK/node-images.txt"
  docker exec "$id" pkill containerd || true
  sleep 2
  docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    "$id" "$NODE_IMAGE" >/dev/null
}

main() {
  step "Debian root filesystem (debootstrap, cached)" build_rootfs
  step "kind base image" build_base
  step "cluster images from Go modules" build_images
  local inputs
  inputs=$( (echo "$BASE_IMAGE $KUBE_VERSION"; for i in "${IMAGES[@]}"; do docker image inspect -f '{{.Id}}' "$i"; done
    sha256sum "$E2E_BIN"/kubeadm "$E2E_BIN"/kubelet "$E2E_BIN"/kubectl | cut -c1-64; sha256sum <"$NODE_IMAGE_SCRIPT") | sha256sum | cut -c1-12)
  NODE_IMAGE=mediachain.local/kind-node:$KUBE_VERSION-$inputs
  if have_image "$NODE_IMAGE"; then
    log "node image $NODE_IMAGE is cached"
  else
    step "node image $NODE_IMAGE" build_node
    log "images in the node's containerd: $(tr '\n' ' ' <"$WORK/node-images.txt")"
  fi
  # Keep the cache bounded: drop node/base images of earlier inputs and dangling layers.
  local old
  # (no image left to drop is not a failure: each grep may select nothing)
  for old in $(docker images --format '{{.Repository}}:{{.Tag}}' |
    { grep -E '^mediachain.local/kind-(node|base):' || true; } |
    { grep -vxF -e "$NODE_IMAGE" -e "$BASE_IMAGE" || true; }); do
    docker rmi "$old" >/dev/null 2>&1 || true
  done
  docker image prune -f >/dev/null 2>&1 || true
  echo "$NODE_IMAGE"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  docker_up
  trap docker_down EXIT
  main
fi
