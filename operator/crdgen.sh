#!/usr/bin/env bash
# Writes the CustomResourceDefinitions generated from the Rust types (operator/src/crd.rs) to
# crds/. With --check, writes nothing and fails with a diff when crds/ is stale (CI runs this).
#
#   operator/crdgen.sh           regenerate crds/mediachainpeers.yaml
#   operator/crdgen.sh --check   fail if crds/ differs from the types
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
cargo run --quiet --locked -p mediachain-operator --bin crdgen >"$generated"

target=crds/mediachainpeers.yaml
if [ "$check" = 1 ]; then
  if ! diff -u "$target" "$generated"; then
    echo "error: $target is stale; run operator/crdgen.sh and commit the result" >&2
    exit 1
  fi
  echo "$target is up to date"
else
  mkdir -p crds
  cp "$generated" "$target"
  echo "wrote $target"
fi
