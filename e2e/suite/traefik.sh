#!/usr/bin/env bash
# The suite's ingress controller, built offline: Traefik from its Go module (static, CGO off),
# packed FROM scratch as mediachain.local/traefik:<version> with a non-root passwd entry.
#
#   bash e2e/suite/traefik.sh      build (cached: binary by module version, image by tag); prints
#                                  the image name
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
IMAGE=mediachain.local/traefik:$TRAEFIK_VERSION
if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE"; exit 0; fi
# The binary: e2e/tools.sh images (cached; .ci/run builds it in the background beforehand).
bash "$E2E_DIR/tools.sh" traefik >&2
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp"
cp "$E2E_BIN/traefik" "$ctx/rootfs/usr/local/bin/traefik"
printf 'root:x:0:0:root:/:/sbin/nologin\ntraefik:x:65532:65532:traefik:/:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\ntraefik:x:65532:\n' >"$ctx/rootfs/etc/group"
chmod 1777 "$ctx/rootfs/tmp"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
USER 65532:65532
LABEL org.opencontainers.image.title=traefik org.opencontainers.image.version=$TRAEFIK_VERSION \\
      org.opencontainers.image.source=https://github.com/traefik/traefik \\
      org.opencontainers.image.description="Traefik built from its Go module for the mediachain e2e suite"
ENTRYPOINT ["/usr/local/bin/traefik"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null 2>&1
echo "$IMAGE"
