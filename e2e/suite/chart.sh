#!/usr/bin/env bash
# Static checks of the Helm chart and of manifests/ (no cluster needed):
#   - charts/mediachain-operator/crds/ equals crds/, manifests/ equals what the chart renders
#     (charts/manifests.sh --check);
#   - the chart's RBAC rules equal operator/rbac.yaml's (the rules the operator's apiserver test
#     proves sufficient), for both the ClusterRole and the namespaced (watchNamespace) variant;
#   - helm lint (defaults, and with the sample network + Ingress) and helm template of each variant.
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
log "chart checks passed"
