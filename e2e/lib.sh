# shellcheck shell=bash
# Shared helpers for the e2e scripts. Sourced, not executed.

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
REPO_ROOT="$(cd "$E2E_DIR/.." && pwd)"
# shellcheck source=versions.env
. "$E2E_DIR/versions.env"

# Cache root, outside the repository, shared by CI runs on the same machine.
E2E_CACHE_ROOT="${MEDIACHAIN_E2E_CACHE:-/var/cache/mediachain-e2e}"
# Per-Kubernetes-version directory: built binaries and images live here.
E2E_CACHE="$E2E_CACHE_ROOT/$KUBE_VERSION"
E2E_BIN="$E2E_CACHE/bin"
mkdir -p "$E2E_BIN"

# Go caches shared by every version (module downloads are content-addressed).
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$E2E_CACHE_ROOT/gomod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$E2E_CACHE_ROOT/gocache}"
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

_E2E_T0=$(date +%s)
log() { printf '[e2e %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - _E2E_T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Every script sourcing this file runs under `set -euo pipefail`. Command substitutions keep
# errexit too, and the ERR trap (which names the failing command and the step it failed in)
# also fires inside functions and subshells.
shopt -s inherit_errexit
set -o errtrace
_E2E_STEPS=() # names of the steps running, innermost last
trap '_e2e_failed $? "${BASH_SOURCE[0]}:$LINENO" "$BASH_COMMAND"' ERR
_e2e_failed() {
  log "FAILED rc=$1 at $2: $3${_E2E_STEPS[*]:+ (in step: ${_E2E_STEPS[-1]})}"
}

# step NAME CMD...: run CMD (a command or a function of the script), log its duration.
# CMD runs with errexit on: a failing command inside a stepped function stops the script (the
# ERR trap names it). Bash switches errexit off for everything run as a condition (`if`, `&&`,
# `||`, `!`), so step refuses to be called that way; commands allowed to fail say `|| true`.
step() {
  local name=$1 t0
  shift
  # A background job inherits the caller's errexit state: in a condition `false` does not stop it.
  (trap - ERR; false; exit 0) &
  if wait $!; then die "step '$name' was called in a condition (if/&&/||/!): errexit would be off in it"; fi
  t0=$(date +%s)
  log "==> $name"
  _E2E_STEPS+=("$name")
  "$@"
  unset '_E2E_STEPS[-1]'
  log "<== $name ($(($(date +%s) - t0))s)"
}

# skipped WHY: say that a part was left out (only ever on an explicit request by a variable CI
# never sets); .ci/run lists every such line (MEDIACHAIN_SKIP_LOG) with its closing summary.
skipped() {
  log "SKIPPED: $*"
  if [ -n "${MEDIACHAIN_SKIP_LOG:-}" ]; then echo "SKIPPED: $*" >>"$MEDIACHAIN_SKIP_LOG"; fi
}

# wait_for DESCRIPTION TIMEOUT_SECONDS CMD...: poll CMD every 2s until it succeeds.
wait_for() {
  local what=$1 timeout=$2 deadline
  shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for: $what"
      return 1
    fi
    sleep 2
  done
}

# Version ldflags so that `kubectl version`, kubeadm and kubelet report KUBE_VERSION.
kube_ldflags() {
  local v=$KUBE_VERSION major minor
  major=${v#v}; major=${major%%.*}
  minor=${v#v*.}; minor=${minor%%.*}
  local f="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=0000000000000000000000000000000000000000"
    f+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$f"
}

# go_tool NAME MODULE@VERSION PACKAGE [EXTRA_LDFLAGS [PINS]]: build one binary in its own module
# (PINS: more MODULE@VERSION to require, space-separated).
go_tool() {
  local name=$1 modver=$2 pkg=$3 extra=${4:-} pins=${5:-}
  # Rebuild when the pinned MODULE@VERSION changes.
  if [ -x "$E2E_BIN/$name" ] && [ "$(cat "$E2E_BIN/.$name.version" 2>/dev/null)" = "$modver" ]; then
    return 0
  fi
  local dir=$E2E_CACHE/src/$name
  mkdir -p "$dir"
  # shellcheck disable=SC2086  # $pins is a list of words
  (cd "$dir" && printf 'module mediachain.local/e2e/%s\n\ngo 1.23.0\n' "$name" >go.mod \
    && go get "$modver" $pins \
    && go build -trimpath -ldflags "-s -w $extra" -o "$E2E_BIN/$name" "$pkg")
  echo "$modver" >"$E2E_BIN/.$name.version"
}
