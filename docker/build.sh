#!/usr/bin/env bash
# Builds the two container images, with no registry and no base image:
#
#   bash docker/build.sh            # cargo build --release, then both images
#   MEDIACHAIN_IMAGE_TAG=dev bash docker/build.sh
#
# Images (tag = the crates' version unless MEDIACHAIN_IMAGE_TAG is set):
#   mediachain-peer:<tag>      ENTRYPOINT /usr/local/bin/mediachain-peer, CMD run (docs/peer-contract.md)
#   mediachain-operator:<tag>  ENTRYPOINT /usr/local/bin/mediachain-operator (operator/deploy.yaml)
#   mediachain-cli:<tag>       ENTRYPOINT /usr/local/bin/mediachain (the client CLI)
#
# Each is FROM scratch: the release binary, exactly the shared libraries `ldd` lists for it
# (glibc, libgcc_s, the dynamic loader), /etc/passwd and /etc/group with the non-root user
# `mediachain` (10001), and empty directories /tmp and (peer) /var/lib/mediachain owned by it.
# No shell or package manager at run time; runs with a read-only root filesystem.
# The legacy builder (DOCKER_BUILDKIT=0) is used: BuildKit would need its own image.
#
# Environment: CARGO_TARGET_DIR (as cargo), MEDIACHAIN_IMAGE_TAG, MEDIACHAIN_SKIP_CARGO=1 (use the
# binaries already built), MEDIACHAIN_CARGO_PROFILE (`release`, the default, or `dev`: CI packs
# the binaries its debug test build made, see docs/testing.md), DOCKER_HOST (an engine;
# e2e/kind/docker.sh starts one).
# Prints one line per image: `<name>:<tag> <size in bytes>`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' peer/Cargo.toml | head -1)
tag=${MEDIACHAIN_IMAGE_TAG:-$version}
target=${CARGO_TARGET_DIR:-$root/target}
profile=${MEDIACHAIN_CARGO_PROFILE:-release}
case "$profile" in
  release) bindir=$target/release ;;
  dev) bindir=$target/debug ;;
  *) log "ERROR: MEDIACHAIN_CARGO_PROFILE=$profile: expected release or dev"; exit 2 ;;
esac
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the build's: rebuilding the same commit gives the same labels.
created=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)

if [ "${MEDIACHAIN_SKIP_CARGO:-0}" != 1 ]; then
  log "cargo build --profile $profile (mediachain-peer, mediachain, mediachain-operator)"
  t0=$(date +%s)
  cargo build --profile "$profile" --locked -p mediachain-peer --bin mediachain-peer --bin mediachain \
    -p mediachain-operator --bin mediachain-operator >&2
  log "cargo build done in $(($(date +%s) - t0))s"
fi

# rootfs DIR BINARY...: the binaries, their libraries, the user, the writable dirs.
rootfs() {
  local dir=$1 bin lib
  shift
  rm -rf "$dir"
  mkdir -p "$dir/usr/local/bin" "$dir/etc" "$dir/tmp"
  for bin in "$@"; do
    [ -x "$bindir/$bin" ] || { log "ERROR: $bindir/$bin is missing"; exit 1; }
    # Stripped copy: the release profile keeps line tables for backtraces; images need not.
    objcopy --strip-debug "$bindir/$bin" "$dir/usr/local/bin/$bin"
    # Every library the dynamic loader resolves, at the same path (incl. the loader itself).
    for lib in $(ldd "$bindir/$bin" | awk '/=> \// {print $3} /^[[:space:]]*\/.* \(0x/ {print $1}'); do
      mkdir -p "$dir$(dirname "$lib")"
      cp -L "$lib" "$dir$lib"
    done
  done
  printf 'root:x:0:0:root:/:/sbin/nologin\nmediachain:x:10001:10001:mediachain:/var/lib/mediachain:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nmediachain:x:10001:\n' >"$dir/etc/group"
  # glibc's resolver: files then DNS (what Kubernetes and Docker networks expect).
  printf 'hosts: files dns\n' >"$dir/etc/nsswitch.conf"
  chmod 1777 "$dir/tmp"
}

# image NAME DESCRIPTION ENTRYPOINT-JSON CMD-JSON BINARY...
image() {
  local name=$1 description=$2 entrypoint=$3 cmd=$4 ctx
  shift 4
  ctx=$(mktemp -d)
  rootfs "$ctx/rootfs" "$@"
  if [ "$name" = mediachain-peer ]; then
    # The data directory, owned by the peer's user (a new volume mounted there inherits it).
    mkdir -p "$ctx/rootfs/etc/mediachain" "$ctx/data"
  fi
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY --chown=0:0 rootfs/ /
$( [ "$name" = mediachain-peer ] && echo 'COPY --chown=10001:10001 data/ /var/lib/mediachain/' )
USER 10001:10001
$( [ "$name" = mediachain-peer ] && echo 'ENV MEDIACHAIN_LOG_FORMAT=json MALLOC_ARENA_MAX=2' )
$( [ "$name" = mediachain-peer ] && echo 'EXPOSE 4001/tcp 8080/tcp' || echo 'EXPOSE 8080/tcp' )
LABEL org.opencontainers.image.title="$name" \\
      org.opencontainers.image.description="$description" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.revision="$revision" \\
      org.opencontainers.image.created="$created" \\
      org.opencontainers.image.source="https://github.com/mediachain/mediachain-at-scale" \\
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \\
      org.opencontainers.image.vendor="Mediachain" \\
      org.opencontainers.image.base.name="scratch"
ENTRYPOINT $entrypoint
CMD $cmd
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t "$name:$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "$name:$tag $(docker image inspect -f '{{.Size}}' "$name:$tag")"
}

image mediachain-peer "Mediachain peer daemon (mediachain-peer run; see docs/peer-contract.md)" \
  '["/usr/local/bin/mediachain-peer"]' '["run"]' mediachain-peer
image mediachain-operator "Kubernetes operator for MediachainPeer resources" \
  '["/usr/local/bin/mediachain-operator"]' '[]' mediachain-operator
# The client CLI, for clients on container networks (and in-cluster debugging).
image mediachain-cli "Mediachain command-line client and tools (mediachain)" \
  '["/usr/local/bin/mediachain"]' '["--help"]' mediachain
