# shellcheck shell=bash
# Helpers of the end-to-end suite (sourced after e2e/lib.sh): the trust tower made with the
# `mediachain` CLI, and the client's main job (register, write, submit, await the confirmation).

# The host's `mediachain` CLI, from the build docker/build.sh packs (MEDIACHAIN_CARGO_PROFILE:
# release by default, dev in CI).
case "${MEDIACHAIN_CARGO_PROFILE:-release}" in dev) HOST_MC_BIN=debug ;; *) HOST_MC_BIN=release ;; esac
HOST_MC_BIN=${MEDIACHAIN_CLI:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/$HOST_MC_BIN/mediachain}
MC_BIN=$HOST_MC_BIN
IMAGE_TAG=${MEDIACHAIN_IMAGE_TAG:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO_ROOT/peer/Cargo.toml" | head -1)}
# shellcheck disable=SC2034  # used by the scripts that source this file
PEER_IMAGE=mediachain-peer:$IMAGE_TAG
# shellcheck disable=SC2034
OPERATOR_IMAGE=mediachain-operator:$IMAGE_TAG

mc() { timeout "${MC_TIMEOUT:-120}" "$MC_BIN" "$@"; }

# tower DIR N: root key (encrypted; passphrase file beside it), Level-0 principal, N Level-1 peer
# identities DIR/peer-<i>/{peer.key,peer.chain}; DIR/trust/root.pub.
tower() {
  local dir=$1 n=$2 i id principal
  mkdir -p "$dir/trust"
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/root.passphrase"
  mc root init --dir "$dir/root" --passphrase-file "$dir/root.passphrase" >/dev/null
  cp "$dir/root/root.pub" "$dir/trust/root.pub"
  principal=$(mc key generate --out "$dir/principal.key")
  mc cert issue --issuer-key "$dir/root/root.key" --passphrase-file "$dir/root.passphrase" \
    --subject "$principal" --level 0 --valid-for 30d --out "$dir/principal.chain"
  for i in $(seq 0 $((n - 1))); do
    mkdir -p "$dir/peer-$i"
    id=$(mc key generate --out "$dir/peer-$i/peer.key")
    mc cert issue --issuer-key "$dir/principal.key" --issuer-chain "$dir/principal.chain" \
      --subject "$id" --level 1 --valid-for 7d --out "$dir/peer-$i/peer.chain"
    echo "$id" >"$dir/peer-$i/peer.id"
  done
}

# as_root CMD...: run as root (directly, or through sudo on a CI runner).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# client_job URL DIR NAME: register a client key with the peer at URL, write an entity and an
# artefact, submit a transaction inserting both and wait for its confirmation; prints the
# transaction id. Fails (with the CLI's output) when any step fails.
client_job() {
  # Callers take its output as `TX=$(client_job ...) || return 1`, where bash runs it with errexit
  # off: every command checks itself, so any failure fails the caller's step.
  local url=$1 dir=$2 name=$3 entity artefact out tx
  mkdir -p "$dir" || return 1
  if [ ! -f "$dir/client.key" ]; then
    mc key generate --out "$dir/client.key" >/dev/null || return 1
  fi
  if [ ! -f "$dir/client.chain" ]; then
    mc --peer "$url" register --key "$dir/client.key" --out "$dir/client.chain" >/dev/null || return 1
  fi
  printf '{"type":"entity","meta":{"name":"%s author"}}' "$name" >"$dir/$name-entity.json" || return 1
  printf '{"type":"artefact","meta":{"name":"%s artefact"}}' "$name" >"$dir/$name-artefact.json" || return 1
  entity=$(mc --peer "$url" put --json "$dir/$name-entity.json") || return 1
  artefact=$(mc --peer "$url" put --json "$dir/$name-artefact.json") || return 1
  if [ -z "$entity" ] || [ -z "$artefact" ]; then
    echo "client_job: \`mc put\` printed no CID (entity '$entity', artefact '$artefact')" >&2
    return 1
  fi
  out=$(mc --peer "$url" submit --key "$dir/client.key" --chain "$dir/client.chain" \
    --insert "$entity" --insert "$artefact" --wait) || { echo "$out" >&2; return 1; }
  tx=$(echo "$out" | head -1)
  echo "$out" | grep -Eq '"state": "(committed|final)"' || { echo "$out" >&2; return 1; }
  echo "$artefact" >"$dir/$name.artefact" || return 1
  echo "$tx"
}

# tx_committed_at URL TX: the peer at URL reports TX committed (or final).
tx_committed_at() { MC_TIMEOUT=10 mc --peer "$1" status "$2" 2>/dev/null | grep -Eq '"state": "(committed|final)"'; }

# head_height URL
head_height() { MC_TIMEOUT=10 mc --peer "$1" head | jq -r .height; }
