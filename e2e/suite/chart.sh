#!/usr/bin/env bash
# Static checks of the Helm chart and of manifests/ (no cluster needed):
#   - charts/mediachain-operator/crds/ equals crds/, manifests/ equals what the chart renders
#     (charts/manifests.sh --check);
#   - the chart's RBAC rules equal operator/rbac.yaml's (the rules the operator's apiserver test
#     proves sufficient), for both the ClusterRole and the namespaced (watchNamespace) variant;
#   - helm lint (defaults, and with the sample network + Ingress) and helm template of each variant;
#   - every template with its value on and off (e2e/suite/chart_toggles.py: lint, render, check);
#   - the monitoring templates on and off (ServiceMonitors, PrometheusRule, dashboard), and the
#     alert rules through promtool (e2e/monitoring/check.sh rules; needs PROMTOOL_BIN).
#
#   bash e2e/suite/chart.sh      (needs HELM_BIN from e2e/tools.sh, or helm on PATH; python3)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
HELM=${HELM_BIN:-helm}
CHART=$REPO_ROOT/charts/mediachain-operator
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

step "CRDs and manifests/ in sync with crds/ and the chart (charts/manifests.sh --check)" \
  env HELM_BIN="$HELM" bash "$REPO_ROOT/charts/manifests.sh" --check

SAMPLE=(--set sampleNetwork.enabled=true --set sampleNetwork.ingress.enabled=true
  --set sampleNetwork.consensus.blockInterval=500ms --set sampleNetwork.targetConnectivity=2)
step "helm lint (defaults)" "$HELM" lint --strict "$CHART"
step "helm lint (sample network + Ingress)" "$HELM" lint --strict "$CHART" "${SAMPLE[@]}"
render() {
  "$HELM" template mc "$CHART" -n mediachain-system --include-crds >"$WORK/default.yaml"
  "$HELM" template mc "$CHART" -n mediachain-system "${SAMPLE[@]}" >"$WORK/sample.yaml"
  "$HELM" template mc "$CHART" -n mediachain-system --set watchNamespace=apps >"$WORK/scoped.yaml"
  grep -q '^kind: MediachainPeer' "$WORK/sample.yaml" || { log "sample network not rendered"; return 1; }
  grep -q '^kind: CustomResourceDefinition' "$WORK/default.yaml" || { log "CRD not rendered"; return 1; }
}
step "helm template (defaults, sample network, watchNamespace)" render

MONITORING=(--set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true
  --set monitoring.dashboard.enabled=true)
monitoring() {
  "$HELM" lint --strict "$CHART" "${MONITORING[@]}" >/dev/null || return 1
  "$HELM" template mc "$CHART" -n mediachain-system "${MONITORING[@]}" >"$WORK/monitoring.yaml"
  python3 - "$WORK/monitoring.yaml" "$WORK/default.yaml" <<'PY'
import json, sys, yaml
on = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
off = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
kinds = sorted(d["kind"] for d in on if d["kind"] in ("ServiceMonitor", "PrometheusRule"))
assert kinds == ["PrometheusRule", "ServiceMonitor", "ServiceMonitor"], kinds
rules = next(d for d in on if d["kind"] == "PrometheusRule")["spec"]["groups"][0]["rules"]
assert len(rules) >= 6, rules
board = next(d for d in on if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
assert json.loads(board["data"]["mediachain-network.json"])["panels"]
assert not any(d["kind"] in ("ServiceMonitor", "PrometheusRule") or d["metadata"]["name"].endswith("-dashboard") for d in off), "monitoring is off by default"
PY
}
step "monitoring templates: on (ServiceMonitors, PrometheusRule, dashboard) and off by default" monitoring
if [ -n "${PROMTOOL_BIN:-}" ]; then
  step "alert rules: promtool check rules + test rules (e2e/monitoring/check.sh)" bash "$E2E_DIR/monitoring/check.sh" rules
else
  skipped "alert rules through promtool (no PROMTOOL_BIN: bash e2e/tools.sh promtool)"
fi

rbac_in_sync() {
  python3 - "$REPO_ROOT/operator/rbac.yaml" "$WORK/default.yaml" "$WORK/scoped.yaml" <<'PY'
import sys, yaml
def docs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]
def rules(path, kinds):
    out = {}
    for d in docs(path):
        if d["kind"] in kinds:
            key = "leader" if "leases" in str(d["rules"]) else "main"
            out[key] = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in d["rules"])
    return out
want = rules(sys.argv[1], {"ClusterRole", "Role"})
bad = False
for path in sys.argv[2:]:
    got = rules(path, {"ClusterRole", "Role"})
    if got != want:
        bad = True
        print(f"RBAC of the chart ({path}) differs from operator/rbac.yaml:\n chart: {got}\n  want: {want}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}
step "chart RBAC rules = operator/rbac.yaml" rbac_in_sync

# rbac.peerKeySecrets=false (every resource under trust.keyCustody: Pod): Secrets read-only.
secrets_read_only() {
  "$HELM" template mc "$CHART" -n mediachain-system --set rbac.peerKeySecrets=false >"$WORK/podkeys.yaml" || return 1
  python3 - "$WORK/default.yaml" "$WORK/podkeys.yaml" <<'PY'
import sys, yaml
def secret_verbs(path):
    for d in yaml.safe_load_all(open(path)):
        if d and d["kind"] == "ClusterRole":
            return [sorted(r["verbs"]) for r in d["rules"] if "secrets" in r["resources"]]
default, pod = secret_verbs(sys.argv[1]), secret_verbs(sys.argv[2])
ok = default == [["create", "delete", "get", "list", "update", "watch"]] and pod == [["get", "list", "watch"]]
print(f"secrets verbs: default {default}, peerKeySecrets=false {pod}", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}
step "rbac.peerKeySecrets=false: Secrets only read" secrets_read_only

# Each template with its value on and off (lint + render + what it renders), table-driven.
step "every template with its value on and off (e2e/suite/chart_toggles.py)" \
  python3 "$E2E_DIR/suite/chart_toggles.py" "$HELM" "$CHART"
log "chart checks passed"
