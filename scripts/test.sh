#!/usr/bin/env bash
# The project's test command (the one in the README; .ci/run calls it too).
#
# - creates a Python virtualenv with the independent DAG-CBOR/CID implementation that the
#   cross-check test compares against (tests/crosscheck/requirements.txt);
# - builds or reuses the Kubernetes test binaries when e2e/tools.sh exists, so the operator and
#   harness tests run against a real kube-apiserver;
# - runs every Rust test of the workspace.
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

if [ -f e2e/tools.sh ] && [ "${MEDIACHAIN_SKIP_KUBE:-0}" != 1 ]; then
  echo "== Kubernetes test binaries (e2e/tools.sh harness; built once, then cached)"
  tool_env=$(bash e2e/tools.sh harness)
  eval "$tool_env"
fi

echo "== cargo test --workspace"
cargo test --workspace --locked "$@"
