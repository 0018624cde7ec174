#!/usr/bin/env bash
# Checks of the chart's monitoring files (charts/mediachain-operator/files/):
#
#   bash e2e/monitoring/check.sh rules            promtool check rules + promtool test rules
#                                                 (e2e/monitoring/alerts.test.yaml: every alert)
#   bash e2e/monitoring/check.sh metrics URL...   every mediachain_* metric an alert or a
#                                                 dashboard panel uses is exported by one of the
#                                                 live /metrics URLs (a peer's, the operator's)
#
# PROMTOOL_BIN: promtool (e2e/tools.sh builds it from its Go module); `metrics` needs curl.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
FILES=$REPO_ROOT/charts/mediachain-operator/files
RULES=$FILES/mediachain-alerts.yaml
DASHBOARD=$FILES/mediachain-dashboard.json

# Metric names in the alerts' and panels' expressions (comments and text panels, which name
# metrics not built yet, do not count).
used() {
  python3 - "$RULES" "$DASHBOARD" <<'PY' | sort -u
import json, re, sys, yaml
exprs = [r["expr"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
exprs += [t["expr"] for p in json.load(open(sys.argv[2]))["panels"] for t in p.get("targets", [])]
for expr in exprs:
    print("\n".join(re.findall(r"mediachain_[a-z0-9_]+", expr)))
PY
}

# Sample names a /metrics page carries, from its `# TYPE` lines: counters as NAME_total,
# histograms as NAME_bucket/_sum/_count, anything else as NAME. A labelled family shows only
# once it has a series (the suite first provokes a rejection for mediachain_rejected_total).
exported() {
  awk '$1 == "#" && $2 == "TYPE" {
    if ($4 == "counter") print $3 "_total";
    else if ($4 == "histogram") { print $3 "_bucket"; print $3 "_sum"; print $3 "_count" }
    else print $3
  }'
}

case "${1:-}" in
  rules)
    : "${PROMTOOL_BIN:?PROMTOOL_BIN must name promtool (e2e/tools.sh)}"
    "$PROMTOOL_BIN" check rules "$RULES"
    (cd "$E2E_DIR/monitoring" && "$PROMTOOL_BIN" test rules alerts.test.yaml)
    ;;
  metrics)
    shift
    [ $# -gt 0 ] || die "usage: $0 metrics URL..."
    have=$(mktemp)
    trap 'rm -f "$have"' EXIT
    for url in "$@"; do
      curl -sf -m 10 "$url" | exported >>"$have" || die "cannot read $url"
    done
    missing=$(used | grep -vxF -f "$have" || true)
    if [ -n "$missing" ]; then
      log "metrics used by the alerts or the dashboard that no live /metrics exports:"
      echo "$missing" >&2
      exit 1
    fi
    log "all $(used | wc -l) metrics used by the alerts and the dashboard are exported"
    ;;
  *) die "usage: $0 rules | metrics URL..." ;;
esac
