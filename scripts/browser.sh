#!/usr/bin/env bash
# Headless Chromium and playwright-core for the explorer's browser test (peer/tests/explorer.rs):
# Debian's `chromium` package (apt) and `playwright-core` from npm (it downloads no browser),
# installed when missing and then cached ($MEDIACHAIN_CACHE/playwright, or target/playwright).
# Prints the variables the test reads, for `eval`:
#   MEDIACHAIN_CHROMIUM    the browser binary
#   MEDIACHAIN_PLAYWRIGHT  the node_modules directory holding playwright-core
# Takes a lock, so concurrent callers wait for one install. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${MEDIACHAIN_CACHE:-$PWD/target}/playwright
version=1.65.1
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
started=$(date +%s)

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "== browser test: apt-get install ${need[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

installed=$(node -p "require('$cache/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ]; then
  echo "== browser test: npm install playwright-core@$version into $cache" >&2
  npm install --prefix "$cache" --no-audit --no-fund --no-save --silent "playwright-core@$version" >&2
fi
elapsed=$(( $(date +%s) - started ))
if [ "$elapsed" -gt 1 ]; then echo "== browser test: installed in ${elapsed}s" >&2; fi
echo "export MEDIACHAIN_CHROMIUM=$(command -v chromium)"
echo "export MEDIACHAIN_PLAYWRIGHT=$cache/node_modules"
