# shellcheck shell=bash
# Docker engine for the kind part: use a running engine if one answers, else install Debian's
# docker.io and start dockerd with its own data root (under the cache, so built images survive
# between runs) and its own socket; `docker_down` stops it only if we started it.
# Sourced by e2e/kind/*.sh after e2e/lib.sh.

KIND_DIR="$E2E_DIR/kind"
DOCKER_STATE="$E2E_CACHE_ROOT/docker"
OUR_DOCKERD_PID=""

host_missing_caps() {
  # Non-empty when the capability bounding set lacks something Docker grants --privileged.
  local bnd
  bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  # Capabilities 0..40 (CHOWN..CHECKPOINT_RESTORE).
  (((bnd & ((1 << 41) - 1)) != ((1 << 41) - 1))) && echo yes || true
}

docker_up() {
  if [ -z "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then
    log "using the Docker engine that already answers"
    return 0
  fi
  local sock=$DOCKER_STATE/run/docker.sock
  export DOCKER_HOST=unix://$sock
  if docker info >/dev/null 2>&1; then
    log "using our dockerd at $sock (left running by an earlier step)"
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    log "installing Debian's docker.io (dockerd, containerd, runc)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >&2
  fi
  mkdir -p "$DOCKER_STATE"/{data,exec,run}
  local cfg=$DOCKER_STATE/daemon.json
  if [ -n "$(host_missing_caps)" ]; then
    log "host capability bounding set is restricted: registering e2e/kind/runc-wrapper as the default OCI runtime"
    install -m 0755 "$KIND_DIR/runc-wrapper" "$DOCKER_STATE/runc-wrapper"
    printf '{"default-runtime":"mediachain-runc","runtimes":{"mediachain-runc":{"path":"%s"}}}\n' \
      "$DOCKER_STATE/runc-wrapper" >"$cfg"
  else
    echo '{}' >"$cfg"
  fi
  rm -f "$sock" "$DOCKER_STATE/run/dockerd.pid"
  dockerd --config-file "$cfg" --host "$DOCKER_HOST" --data-root "$DOCKER_STATE/data" \
    --exec-root "$DOCKER_STATE/exec" --pidfile "$DOCKER_STATE/run/dockerd.pid" \
    >"$DOCKER_STATE/dockerd.log" 2>&1 &
  OUR_DOCKERD_PID=$!
  if ! wait_for "dockerd to answer on $sock" 60 docker info; then
    tail -20 "$DOCKER_STATE/dockerd.log" >&2
    return 1
  fi
  log "started dockerd pid $OUR_DOCKERD_PID (data root $DOCKER_STATE/data)"
}

docker_down() {
  [ -n "$OUR_DOCKERD_PID" ] || return 0
  log "stopping our dockerd pid $OUR_DOCKERD_PID"
  kill "$OUR_DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$OUR_DOCKERD_PID" 2>/dev/null || break
    sleep 1
  done
  kill -9 "$OUR_DOCKERD_PID" 2>/dev/null || true
  OUR_DOCKERD_PID=""
}
