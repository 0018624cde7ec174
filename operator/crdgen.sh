#!/usr/bin/env bash
# Writes the CustomResourceDefinitions generated from the Rust types (operator/src/crd.rs) to
# crds/. With --check, writes nothing and fails with a diff when crds/ is stale (CI runs this).
#
#   operator/crdgen.sh           regenerate crds/mediachainpeers.yaml
#   operator/crdgen.sh --check   fail if crds/ differs from the types
#   operator/crdgen.sh --check --test-build
#                                as --check, with the crdgen of the workspace's test build
#
# --test-build (.ci/run, after scripts/test.sh): `cargo test --workspace --no-run` builds every
# binary of a package with integration tests, crdgen included, with the dependencies' features
# unified over the workspace, and finds it built. `cargo run -p mediachain-operator` resolves
# them for the operator alone: ~40 crates (the peer library among them) compiled a second time,
# 535 s of a cold CI run at load 14-18.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0 test_build=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    --test-build) test_build=1 ;;
    *) echo "usage: $0 [--check] [--test-build]" >&2; exit 2 ;;
  esac
done

generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
if [ "$test_build" = 1 ]; then
  # The binary itself (not the test harness cargo also builds from its source).
  crdgen=$(cargo test --workspace --locked --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m["target"]["name"] == "crdgen"
            and not m["profile"]["test"] and m.get("executable")):
        print(m["executable"])')
  [ -n "$crdgen" ] || { echo "error: the test build has no crdgen binary" >&2; exit 1; }
  "$crdgen" >"$generated"
else
  cargo run --quiet --locked -p mediachain-operator --bin crdgen >"$generated"
fi

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
