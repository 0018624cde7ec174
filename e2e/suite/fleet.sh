#!/usr/bin/env bash
# Containerized fleet check without Kubernetes: the peer image (docker/build.sh) started as N
# containers on a user-defined Docker network, with a trust tower made by the `mediachain` CLI
# bind-mounted read-only, seeds by container DNS name, read-only root filesystem, no
# capabilities, a named volume per peer at /var/lib/mediachain. Then, from the host through the
# published API ports: every peer Ready and connected; a client registers with peer 0, writes and
# submits a transaction and waits for the confirmation; every peer has it committed; peer 1 is
# removed (container deleted, volume kept), a second transaction is confirmed without it, peer 1
# is started again on its volume and catches up with both transactions.
#
#   bash e2e/suite/fleet.sh           (after docker/build.sh; MEDIACHAIN_FLEET_PEERS=3)
#
# Every wait is bounded and says what it waited for; containers, network, volumes and the work
# directory are removed on exit (on failure the peers' logs are printed first).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$E2E_DIR/kind/docker.sh"
. "$E2E_DIR/suite/common.sh"

N=${MEDIACHAIN_FLEET_PEERS:-3}
RUN=mcfleet-$$
NET=$RUN-net
WORK=$(mktemp -d)
STARTED=()

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    for c in "${STARTED[@]}"; do
      log "--- last log lines of $c"
      docker logs --tail 25 "$c" 2>&1 | cut -c1-400 >&2 || true
    done
  fi
  for c in "${STARTED[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  docker network rm "$NET" >/dev/null 2>&1 || true
  for i in $(seq 0 $((N - 1))); do docker volume rm -f "$RUN-data-$i" >/dev/null 2>&1 || true; done
  as_root rm -rf "$WORK" || true
  docker_down
  exit "$rc"
}

exec 9>&2
docker_up
trap cleanup EXIT
[ -x "$MC_BIN" ] || die "$MC_BIN missing: run docker/build.sh first"
docker image inspect "$PEER_IMAGE" >/dev/null || die "image $PEER_IMAGE missing: run docker/build.sh first"

step "trust tower for $N peers (mediachain root init / key generate / cert issue)" tower "$WORK/net" "$N"
{
  echo "# the fleet's peers, by container DNS name on network $NET"
  for i in $(seq 0 $((N - 1))); do echo "/dns4/peer-$i/tcp/4001"; done
} >"$WORK/net/seeds.txt"
mkdir -p "$WORK/net/seeds" && mv "$WORK/net/seeds.txt" "$WORK/net/seeds/"
# The container runs as uid 10001; the key files are 0600.
as_root chown -R 10001:10001 "$WORK/net/trust" "$WORK/net/seeds" "$WORK"/net/peer-*

docker network create "$NET" >/dev/null

start_peer() {
  local i=$1 c
  c=$RUN-peer-$1
  docker run -d --name "$c" --network "$NET" --network-alias "peer-$i" --hostname "peer-$i" \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    -v "$WORK/net/peer-$i:/etc/mediachain/identity:ro" \
    -v "$WORK/net/trust:/etc/mediachain/trust:ro" \
    -v "$WORK/net/seeds:/etc/mediachain/seeds:ro" \
    -v "$RUN-data-$i:/var/lib/mediachain" \
    -e MEDIACHAIN_NETWORK=fleet \
    -e "MEDIACHAIN_EXTERNAL_ADDRESS=/dns4/peer-$i/tcp/4001" \
    -e MEDIACHAIN_BLOCK_INTERVAL=500ms \
    -e MEDIACHAIN_TARGET_CONNECTIVITY=2 \
    -e MEDIACHAIN_REGISTRATION_POW_BITS=12 \
    -e MEDIACHAIN_TRANSACTION_POW_BITS=8 \
    -p 127.0.0.1::8080 "$PEER_IMAGE" >/dev/null
  STARTED+=("$c")
}
url_of() { echo "http://$(docker port "$RUN-peer-$1" 8080/tcp | head -1)"; }
# Fails the whole check at once (with the logs, from cleanup) when the container has exited.
alive() {
  [ "$(docker inspect -f '{{.State.Running}}' "$RUN-peer-$1" 2>/dev/null)" = true ] && return 0
  log "peer $1 container is not running (exit code $(docker inspect -f '{{.State.ExitCode}}' "$RUN-peer-$1" 2>/dev/null))" 2>&9
  exit 1
}
ready() { alive "$1" && curl -sf -m 3 "$(url_of "$1")/readyz" >/dev/null; }
connected() {
  local n
  n=$(curl -sf -m 3 "$(url_of "$1")/metrics" | awk '/^mediachain_peers_connected / {print int($2)}')
  [ "${n:-0}" -ge "$2" ]
}

all_ready() {
  for i in $(seq 0 $((N - 1))); do
    wait_for "peer $i /readyz = 200 (admitted and synced)" 120 ready "$i" || return 1
  done
  for i in $(seq 0 $((N - 1))); do
    wait_for "peer $i connected to >= $((N - 1)) peers (/metrics)" 60 connected "$i" $((N - 1)) || return 1
  done
}
start_all() { for i in $(seq 0 $((N - 1))); do start_peer "$i"; done; }
step "start $N peer containers from $PEER_IMAGE on network $NET" start_all
step "all peers Ready and connected" all_ready
for i in $(seq 0 $((N - 1))); do log "peer $i: $(url_of "$i")"; done

TX1=""
job1() { TX1=$(client_job "$(url_of 0)" "$WORK/client" first) || return 1; log "transaction $TX1 committed (peer 0)"; }
step "client from the host: register, put, submit --wait through peer 0's published port" job1
everywhere() {
  local tx=$1 i
  for i in $(seq 0 $((N - 1))); do
    wait_for "peer $i reports transaction $tx committed" 60 tx_committed_at "$(url_of "$i")" "$tx" || return 1
  done
}
step "every peer has transaction 1 committed" everywhere "$TX1"

if [ "$N" -ge 3 ]; then
  TX2=""
  restart_check() {
    docker rm -f "$RUN-peer-1" >/dev/null
    log "peer 1 container removed (its volume $RUN-data-1 kept)"
    TX2=$(client_job "$(url_of 0)" "$WORK/client" second) || return 1
    log "transaction $TX2 committed while peer 1 was down"
    start_peer 1
    wait_for "restarted peer 1 /readyz = 200" 120 ready 1 || return 1
    wait_for "restarted peer 1 has transaction 1 (from its volume)" 60 tx_committed_at "$(url_of 1)" "$TX1" || return 1
    wait_for "restarted peer 1 synced transaction 2 (committed while it was down)" 90 tx_committed_at "$(url_of 1)" "$TX2" || return 1
    local h0 h1
    same_height() { h0=$(head_height "$(url_of 0)"); h1=$(head_height "$(url_of 1)"); [ "$h0" = "$h1" ]; }
    wait_for "peer 1's journal head height = peer 0's" 60 same_height || return 1
    log "peer 1 back at height $h1, nothing lost"
  }
  step "peer 1 removed and restarted on its volume: recovers and syncs" restart_check
fi
log "fleet check passed: $N peer containers converged and served the client"
