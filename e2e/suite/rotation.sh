# shellcheck shell=bash
# The suite's principal-rotation part (sourced by e2e/suite/suite.sh on the 4-peer `sample`; uses
# its helpers k, mcp_ready, pod_url, committed_everywhere, mc, $PROXY, $WORK and the trust tower
# in $WORK/net, and rollout.sh's writer_loop, longest_gap, confirmed_since, rolled_out):
#
#   a second principal B is certified by the network's root (the `mediachain` CLI) into the
#   Secret mediachain-principal-b; the resource is pointed at it with the old principal's Secret
#   as retiringPrincipalSecretName, while a client writes through the client Service (its chain
#   goes through the old principal: it keeps writing throughout). The operator re-issues every
#   peer's certificate under B and the peers restart one at a time: status.principalRotation
#   goes Rotating -> Retired (Event PrincipalRetired), the pods were re-created in the order
#   3, 2, 1, 0, each peer's own mediachain_certificate_expiry_timestamp_seconds is then B's
#   (B is certified for longer than A, so the two differ), no peer ever counted a refused
#   admission or peer record (mediachain_rejected_total{kind="peer"}, sampled from every
#   running peer every few seconds throughout: each pod's count must stay at what it had when
#   first seen, 0 for a pod started during the rotation), no more than ROTATION_MAX_GAP seconds
#   passed without a confirmation, and every confirmed transaction is on all 4 peers after.

ROTATION_MAX_GAP=${MEDIACHAIN_E2E_ROTATION_MAX_GAP:-90}

# The second principal, certified by the root for 60 days (the tower's first one: 30 days).
principal_b() {
  local dir=$WORK/net id
  id=$(mc key generate --out "$dir/principal-b.key") || return 1
  mc cert issue --issuer-key "$dir/root/root.key" --passphrase-file "$dir/root.passphrase" \
    --subject "$id" --level 0 --valid-for 60d --out "$dir/principal-b.chain" >/dev/null || return 1
  k create secret generic mediachain-principal-b --from-file=principal.key="$dir/principal-b.key" \
    --from-file=principal.chain="$dir/principal-b.chain" \
    --from-file=root.pub="$dir/trust/root.pub" >/dev/null || return 1
  echo "$id"
}

# peer_metric POD NAME: the sum of the series starting with NAME at the peer's /metrics (0 if none).
peer_metric() {
  curl -sf -m 5 "$(pod_url "$1")/metrics" | awk -v s="$2" '
    index($0, s) == 1 { sum += $NF } END { printf "%.0f\n", sum }'
}

# The admission sampler: every 3 s, for each running peer, "<pod> <uid> <refusals>" where
# refusals counts refused hellos and peer records (mediachain_rejected_total{kind="peer",...}).
admission_sampler() {
  local pod uid n
  while [ ! -f "$WORK/rotation.stop" ]; do
    while read -r pod uid; do
      [ -n "$uid" ] || continue
      n=$(curl -sf -m 5 "$(pod_url "$pod")/metrics" 2>/dev/null |
        awk '/^mediachain_rejected_total\{/ && /kind="peer"/ && /reason="(admission|record)"/ { sum += $NF } END { printf "%d\n", sum }') || continue
      [ -n "$n" ] && echo "$pod $uid $n" >>"$WORK/rotation.admission"
    done < <(k get pods -l app.kubernetes.io/instance=sample \
      -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid}{"\n"}{end}' 2>/dev/null)
    sleep 3
  done
}

# Pods (by uid) whose refusals grew after they were first seen (those started during the
# rotation from 0), as "<pod> <uid> <first> <last>".
admission_lost() {
  awk -v old="$1" '
    BEGIN { n = split(old, u, " "); for (i = 1; i <= n; i++) existed[u[i]] = 1 }
    !($2 in first) { first[$2] = existed[$2] ? $3 : 0; pod[$2] = $1 }
    { last[$2] = $3 }
    END { for (id in last) if (last[id] > first[id]) print pod[id], id, first[id], last[id] }' \
    "$WORK/rotation.admission"
}

rotation_phase() { k get mcp sample -o jsonpath='{.status.principalRotation.phase}'; }
phase_is() { [ "$(rotation_phase)" = "$1" ]; }

rotate_principal() {
  local url writer sampler b started ended gap tx order i after want lost old_uids
  local -a before=()
  b=$(principal_b) || return 1
  log "principal B $b certified by the root (Secret mediachain-principal-b)"
  for i in 0 1 2 3; do before[i]=$(peer_metric "sample-$i" mediachain_certificate_expiry_timestamp_seconds) || return 1; done
  old_uids=$(k get pods -l app.kubernetes.io/instance=sample -o jsonpath='{.items[*].metadata.uid}')
  url="$PROXY/api/v1/namespaces/$NS/services/sample:8080/proxy"
  rm -f "$WORK/writer.stop" "$WORK/writer.failed" "$WORK/rotation.stop"
  : >"$WORK/writer.confirmed"
  : >"$WORK/rotation.admission"
  admission_sampler &
  sampler=$!
  echo "$sampler" >>"$WORK/pids"
  writer_loop "$url" &
  writer=$!
  echo "$writer" >>"$WORK/pids"
  wait_for "the client's first transaction through the client Service" 120 confirmed_since 0 || return 1
  started=$(date +%s)
  k patch mcp sample --type merge -p '{"spec":{"trust":{"principalSecretName":"mediachain-principal-b","retiringPrincipalSecretName":"mediachain-principal"}}}' >/dev/null || return 1
  wait_for "status.principalRotation.phase Rotating" 60 phase_is Rotating || return 1
  wait_for "the rotation through 4 peers: phase Retired" 900 phase_is Retired || return 1
  ended=$(date +%s)
  wait_for "StatefulSet sample rolled out" 120 rolled_out 4 "$SAMPLE_IMAGE" || return 1
  order=$(for i in 0 1 2 3; do
    echo "$(k get pod "sample-$i" -o jsonpath='{.metadata.creationTimestamp}') $i"
  done | sort | awk '{ printf " %s", $2 }')
  log "rotation to principal $b over 4 peers in $((ended - started))s; pods re-created in the order:$order"
  [ "$order" = " 3 2 1 0" ] || { log "the peers were not restarted highest first"; return 1; }
  [ "$(k get mcp sample -o jsonpath='{.status.principalRotation.to}')" = "$b" ] || return 1
  [ "$(k get mcp sample -o jsonpath='{.status.conditions[?(@.type=="PrincipalRotated")].reason}')" = Retired ] || return 1
  k get events --field-selector reason=PrincipalRetired -o name | grep -q . || { log "no PrincipalRetired Event"; return 1; }
  for i in 0 1 2 3; do
    after=$(peer_metric "sample-$i" mediachain_certificate_expiry_timestamp_seconds) || return 1
    want=$(k get mcp sample -o jsonpath="{.status.peers[?(@.name==\"sample-$i\")].certificateNotAfter}")
    log "sample-$i runs a chain valid until $after (before: ${before[i]}; status: $want)"
    [ "$after" = "$want" ] && [ "$after" != "${before[i]}" ] || { log "sample-$i does not run its certificate under B"; return 1; }
  done
  wait_for "a transaction confirmed after the rotation" 120 confirmed_since "$ended" || return 1
  touch "$WORK/writer.stop" "$WORK/rotation.stop"
  wait "$writer" || true
  wait "$sampler" || true
  lost=$(admission_lost "$old_uids")
  log "admission samples: $(wc -l <"$WORK/rotation.admission") over $(awk '{print $2}' "$WORK/rotation.admission" | sort -u | wc -l) pods"
  [ -z "$lost" ] || { log "refused admissions or peer records during the rotation (pod uid first last): $lost"; return 1; }
  gap=$(longest_gap "$started" "$ended")
  log "client: $(confirmed_count) transactions confirmed, $(wc -l 2>/dev/null <"$WORK/writer.failed" || echo 0) attempts failed; longest time without a confirmation during the rotation: ${gap}s"
  [ "$gap" -le "$ROTATION_MAX_GAP" ] || { log "the network stopped confirming for ${gap}s (limit ${ROTATION_MAX_GAP}s)"; return 1; }
  wait_for "mcp/sample Ready with 4 ready peers" 240 mcp_ready 4 || return 1
  while read -r _ tx; do
    committed_everywhere "$tx" 4 || return 1
  done <"$WORK/writer.confirmed"
}
