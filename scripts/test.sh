#!/usr/bin/env bash
# The project's test command (the one in the README; .ci/run calls it too).
#
# - creates a Python virtualenv with the independent DAG-CBOR/CID implementation that the
#   cross-check test compares against (tests/crosscheck/requirements.txt);
# - builds or reuses the Kubernetes binaries (e2e/tools.sh), so the operator and harness tests
#   run against a real kube-apiserver and kube-controller-manager (MEDIACHAIN_SKIP_KUBE=1 skips
#   those tests: each prints `SKIPPED:`; without the variable they fail);
# - installs or reuses headless Chromium and playwright-core (scripts/browser.sh) for the
#   explorer's browser test (MEDIACHAIN_SKIP_BROWSER=1 skips it);
# - runs every Rust test of the workspace, every test binary even after a failure.
# docs/testing.md says what each layer proves and how to run one alone.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cache=${MEDIACHAIN_CACHE:-$root/target}
venv=$cache/pyenv
requirements=peer/tests/crosscheck/requirements.txt
if ! "$venv/bin/python" -c 'import dag_cbor, multiformats' 2>/dev/null; then
  echo "== creating Python virtualenv for the cross-check in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
fi
export MEDIACHAIN_PYTHON=$venv/bin/python

# The Kubernetes binaries build (or are found cached) in the background while cargo compiles the
# test binaries: the two take turns at the cores instead of waiting on each other.
tools_pid=
if [ "${MEDIACHAIN_SKIP_KUBE:-0}" != 1 ]; then
  echo "== Kubernetes test binaries (e2e/tools.sh harness; built once from Go modules, then cached), in the background"
  tools_env=$(mktemp)
  tools_log=$(mktemp)
  bash e2e/tools.sh harness >"$tools_env" 2>"$tools_log" &
  tools_pid=$!
  trap 'kill "$tools_pid" 2>/dev/null || true; rm -f "$tools_env" "$tools_log"' EXIT
else
  echo "SKIPPED: Kubernetes test binaries not built (MEDIACHAIN_SKIP_KUBE=1; the tests needing them skip)"
fi

echo "== cargo test --workspace --no-run (building the test binaries)"
cargo test --workspace --locked --no-run "$@"

if [ -n "$tools_pid" ]; then
  echo "== waiting for the Kubernetes test binaries (e2e/tools.sh harness)"
  if ! wait "$tools_pid"; then
    tail -40 "$tools_log" >&2
    echo "e2e/tools.sh harness failed (its last lines above)" >&2
    exit 1
  fi
  tools_pid=
  eval "$(cat "$tools_env")"
fi

if [ "${MEDIACHAIN_SKIP_BROWSER:-0}" != 1 ]; then
  echo "== headless Chromium and playwright-core for the explorer test (scripts/browser.sh)"
  browser_env=$(bash scripts/browser.sh)
  eval "$browser_env"
else
  echo "SKIPPED: Chromium and playwright-core not installed (MEDIACHAIN_SKIP_BROWSER=1; the explorer test skips)"
fi

# Every test binary runs, even after one failed (the summary counts them all).
echo "== cargo test --workspace --no-fail-fast"
cargo test --workspace --locked --no-fail-fast "$@"
