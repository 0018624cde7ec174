# shellcheck shell=bash
# The suite's peer-aware upgrade part (sourced by e2e/suite/suite.sh on the 4-peer `sample`;
# uses its helpers k, mcp_ready, committed_everywhere, mc, tx_committed_at, $PROXY and $WORK):
#
#   an image change (the same peer image under a second tag, MEDIACHAIN_E2E_ROLLOUT_TAG, loaded
#   by kind.sh) rolls through the 4 peers one at a time, highest ordinal first, each next only
#   once the restarted peer is ready again, while a client writes through the client Service
#   (the apiserver's service proxy: each request reaches a ready peer; each write is confirmed
#   by polling its status, committed at the peer asked). Every transaction the
#   client saw confirmed is then committed on every peer (nothing confirmed is lost), and
#   confirmations never stopped for longer than ROLLOUT_MAX_GAP seconds (the network never stops
#   committing).

ROLLOUT_MAX_GAP=${MEDIACHAIN_E2E_ROLLOUT_MAX_GAP:-90}

# rolled_out N IMAGE: the StatefulSet's rollout is over (partition 0, one revision, N pods
# updated and ready) and every pod runs IMAGE.
rolled_out() {
  local n=$1 image=$2 got generation observed partition current update updated ready
  got=$(k get sts sample -o jsonpath='{.metadata.generation} {.status.observedGeneration} {.spec.updateStrategy.rollingUpdate.partition} {.status.currentRevision} {.status.updateRevision} {.status.updatedReplicas} {.status.readyReplicas}')
  read -r generation observed partition current update updated ready <<<"$got"
  [ "$generation" = "$observed" ] && [ "$partition" = 0 ] && [ "$current" = "$update" ] &&
    [ "$updated" = "$n" ] && [ "$ready" = "$n" ] || return 1
  [ "$(k get pods -l app.kubernetes.io/instance=sample -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | grep -cx "$image")" = "$n" ]
}

# write_once URL DIR NAME: put an entity and an artefact, submit a transaction inserting both and
# poll its status (at whichever peer the URL reaches) until it is committed; prints its id. No
# event stream: the apiserver's proxy need not stream, and a peer restarting would end it.
write_once() {
  local url=$1 dir=$2 name=$3 entity artefact tx deadline
  printf '{"type":"entity","meta":{"name":"%s author"}}' "$name" >"$dir/$name-entity.json" || return 1
  printf '{"type":"artefact","meta":{"name":"%s artefact"}}' "$name" >"$dir/$name-artefact.json" || return 1
  entity=$(MC_TIMEOUT=30 mc --peer "$url" put --json "$dir/$name-entity.json") || return 1
  artefact=$(MC_TIMEOUT=30 mc --peer "$url" put --json "$dir/$name-artefact.json") || return 1
  [ -n "$entity" ] && [ -n "$artefact" ] || return 1
  tx=$(MC_TIMEOUT=30 mc --peer "$url" submit --key "$dir/client.key" --chain "$dir/client.chain" \
    --insert "$entity" --insert "$artefact" | head -1) || return 1
  [ -n "$tx" ] || return 1
  deadline=$(($(date +%s) + 60))
  until tx_committed_at "$url" "$tx"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
  echo "$tx"
}

# The client's loop: register, then write transactions until WORK/writer.stop exists; each
# confirmed one is appended to WORK/writer.confirmed as "<unix seconds> <tx>", each failed
# attempt to WORK/writer.failed.
writer_loop() {
  local url=$1 dir i=0 tx
  # A new client each time: the rollout and rotation parts each start one.
  dir=$(mktemp -d "$WORK/writer.XXXXXX") || return 1
  mc key generate --out "$dir/client.key" >/dev/null || return 1
  until mc --peer "$url" register --key "$dir/client.key" --out "$dir/client.chain" >/dev/null 2>>"$WORK/writer.err"; do
    [ ! -f "$WORK/writer.stop" ] || return 1
    sleep 2
  done
  while [ ! -f "$WORK/writer.stop" ]; do
    i=$((i + 1))
    if tx=$(write_once "$url" "$dir" "w$i" 2>>"$WORK/writer.err"); then
      echo "$(date +%s) $tx" >>"$WORK/writer.confirmed"
    else
      echo "$(date +%s) w$i" >>"$WORK/writer.failed"
      sleep 1
    fi
  done
}

# The longest time without a confirmation between FROM and TO (Unix seconds).
longest_gap() {
  awk -v from="$1" -v to="$2" '
    BEGIN { last = from; gap = 0 }
    $1 >= from && $1 <= to { if ($1 - last > gap) gap = $1 - last; last = $1 }
    END { if (to - last > gap) gap = to - last; print gap }' "$WORK/writer.confirmed"
}

# Some transaction was confirmed at or after Unix second $1.
confirmed_since() { awk -v t="$1" '$1 >= t { found = 1 } END { exit !found }' "$WORK/writer.confirmed"; }

confirmed_count() { wc -l <"$WORK/writer.confirmed" 2>/dev/null || echo 0; }

image_rollout() {
  local image=mediachain-peer:$MEDIACHAIN_E2E_ROLLOUT_TAG url writer started ended gap tx order i
  url="$PROXY/api/v1/namespaces/$NS/services/sample:8080/proxy"
  : >"$WORK/writer.confirmed"
  writer_loop "$url" &
  writer=$!
  echo "$writer" >>"$WORK/pids"
  wait_for "the client's first transaction through the client Service" 120 confirmed_since 0 || return 1
  started=$(date +%s)
  k patch mcp sample --type merge -p "{\"spec\":{\"image\":\"$image\"}}" >/dev/null || return 1
  wait_for "the rollout of $image through 4 peers" 900 rolled_out 4 "$image" || return 1
  ended=$(date +%s)
  # Highest ordinal first: the new pods were created in the order 3, 2, 1, 0.
  order=$(for i in 0 1 2 3; do
    echo "$(k get pod "sample-$i" -o jsonpath='{.metadata.creationTimestamp}') $i"
  done | sort | awk '{ printf " %s", $2 }')
  log "rollout of $image over 4 peers in $((ended - started))s; pods re-created in the order:$order"
  [ "$order" = " 3 2 1 0" ] || { log "the peers were not replaced highest first"; return 1; }
  # Keep writing a little after the rollout, then stop the client.
  wait_for "a transaction confirmed after the rollout" 120 \
    confirmed_since "$ended" || return 1
  touch "$WORK/writer.stop"
  wait "$writer" || true
  gap=$(longest_gap "$started" "$ended")
  log "client: $(confirmed_count) transactions confirmed, $(wc -l 2>/dev/null <"$WORK/writer.failed" || echo 0) attempts failed; longest time without a confirmation during the rollout: ${gap}s"
  [ "$gap" -le "$ROLLOUT_MAX_GAP" ] || { log "the network stopped confirming for ${gap}s (limit ${ROLLOUT_MAX_GAP}s)"; return 1; }
  wait_for "mcp/sample Ready with 4 ready peers" 240 mcp_ready 4 || return 1
  while read -r _ tx; do
    committed_everywhere "$tx" 4 || return 1
  done <"$WORK/writer.confirmed"
}
