#!/usr/bin/env python3
"""Each chart template with its value on and off (called by e2e/suite/chart.sh).

For every case: `helm lint --strict` and `helm template` with the values set, then a check of
the rendered objects. Usage: chart_toggles.py HELM CHART. Prints one line per case; exits 1 on
the first case whose rendering is not what its value asks for.
"""
import subprocess
import sys

import yaml

HELM, CHART = sys.argv[1], sys.argv[2]
SAMPLE = ["sampleNetwork.enabled=true"]


def render(values):
    args = [a for v in values for a in ("--set", v)]
    subprocess.run([HELM, "lint", "--strict", CHART, *args], check=True, capture_output=True)
    out = subprocess.run(
        [HELM, "template", "mc", CHART, "-n", "mediachain-system", *args],
        check=True, capture_output=True, text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(docs):
    return sorted(d["kind"] for d in docs)


def one(docs, kind, suffix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return found[0] if found else None


def pod(docs):
    return one(docs, "Deployment")["spec"]["template"]


def mcp(docs):
    return one(docs, "MediachainPeer")["spec"]


def anti(docs):
    return pod(docs)["spec"].get("affinity", {}).get("podAntiAffinity", {})


# (name, values, check of the rendered objects)
CASES = [
    ("serviceAccount.create on", [], lambda d: one(d, "ServiceAccount") is not None),
    ("serviceAccount.create off: an existing account is used",
     ["serviceAccount.create=false", "serviceAccount.name=existing"],
     lambda d: one(d, "ServiceAccount") is None
     and pod(d)["spec"]["serviceAccountName"] == "existing"),
    ("rbac.create on", [], lambda d: one(d, "ClusterRole") and one(d, "ClusterRoleBinding")),
    ("rbac.create off", ["rbac.create=false"],
     lambda d: not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} & set(kinds(d))),
    ("watchNamespace: a Role in it instead of a ClusterRole", ["watchNamespace=apps"],
     lambda d: one(d, "ClusterRole") is None
     and any(r["kind"] == "Role" and r["metadata"]["namespace"] == "apps" for r in d)),
    ("metrics.enabled on", [],
     lambda d: one(d, "Service", "-metrics") is not None
     and "prometheus.io/scrape" in pod(d)["metadata"].get("annotations", {})),
    ("metrics.enabled off", ["metrics.enabled=false"],
     lambda d: one(d, "Service", "-metrics") is None
     and "prometheus.io/scrape" not in (pod(d)["metadata"].get("annotations") or {})),
    ("podDisruptionBudget.enabled on", [],
     lambda d: one(d, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1),
    ("podDisruptionBudget.enabled off", ["podDisruptionBudget.enabled=false"],
     lambda d: one(d, "PodDisruptionBudget") is None),
    ("podDisruptionBudget with one replica: none", ["replicaCount=1"],
     lambda d: one(d, "PodDisruptionBudget") is None),
    ("antiAffinity soft", [], lambda d: "preferredDuringSchedulingIgnoredDuringExecution" in anti(d)),
    ("antiAffinity hard", ["antiAffinity=hard"],
     lambda d: "requiredDuringSchedulingIgnoredDuringExecution" in anti(d)),
    ("antiAffinity none", ["antiAffinity=none"], lambda d: "affinity" not in pod(d)["spec"]),
    ("affinity replaces antiAffinity", ["affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
                                        "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key=pool",
                                        "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator=Exists"],
     lambda d: list(pod(d)["spec"]["affinity"]) == ["nodeAffinity"]),
    ("ingressTrustedProxies on", ["ingressTrustedProxies={10.244.0.0/16}"],
     lambda d: any(e["name"] == "INGRESS_TRUSTED_PROXIES" and e["value"] == "10.244.0.0/16"
                   for e in pod(d)["spec"]["containers"][0]["env"])),
    ("ingressTrustedProxies off", [],
     lambda d: all(e["name"] != "INGRESS_TRUSTED_PROXIES" for e in pod(d)["spec"]["containers"][0]["env"])),
    ("sampleNetwork off", [], lambda d: one(d, "MediachainPeer") is None),
    ("sampleNetwork.ingress off", SAMPLE, lambda d: "ingress" not in mcp(d)),
    ("sampleNetwork.ingress on", SAMPLE + ["sampleNetwork.ingress.enabled=true", "sampleNetwork.ingress.className=traefik"],
     lambda d: mcp(d)["ingress"]["className"] == "traefik"),
    ("sampleNetwork.retiringPrincipalSecretName off", SAMPLE, lambda d: "retiringPrincipalSecretName" not in mcp(d)["trust"]),
    ("sampleNetwork.retiringPrincipalSecretName on", SAMPLE + ["sampleNetwork.retiringPrincipalSecretName=org-a-principal"],
     lambda d: mcp(d)["trust"]["retiringPrincipalSecretName"] == "org-a-principal"),
    ("sampleNetwork.networkParametersConfigMap off", SAMPLE, lambda d: "networkParameters" not in mcp(d)),
    ("sampleNetwork.networkParametersConfigMap on", SAMPLE + ["sampleNetwork.networkParametersConfigMap=orgnet-params"],
     lambda d: mcp(d)["networkParameters"] == {"configMapName": "orgnet-params"}),
    ("sampleNetwork.storage.storageClassName off", SAMPLE, lambda d: "storageClassName" not in mcp(d)["storage"]),
    ("sampleNetwork.storage.storageClassName on", SAMPLE + ["sampleNetwork.storage.storageClassName=fast"],
     lambda d: mcp(d)["storage"]["storageClassName"] == "fast"),
    ("sampleNetwork.consensus off", SAMPLE, lambda d: "consensus" not in mcp(d)),
    ("sampleNetwork.consensus on", SAMPLE + ["sampleNetwork.consensus.blockInterval=500ms", "sampleNetwork.consensus.transactionPowBits=8"],
     lambda d: mcp(d)["consensus"] == {"blockInterval": "500ms", "transactionPowBits": 8}),
    ("sampleNetwork.networkPolicy off", SAMPLE, lambda d: "networkPolicy" not in mcp(d)),
    ("sampleNetwork.networkPolicy on", SAMPLE + ["sampleNetwork.networkPolicy.metricsNamespace=monitoring"],
     lambda d: mcp(d)["networkPolicy"] == {"metricsNamespace": "monitoring"}),
]

for name, values, check in CASES:
    try:
        ok = bool(check(render(values)))
    except subprocess.CalledProcessError as e:
        print(f"FAILED {name}: {' '.join(e.cmd[:3])}: {e.stderr or e.stdout}", file=sys.stderr)
        sys.exit(1)
    print(f"{'ok' if ok else 'FAILED'}: {name} ({' '.join(values) or 'defaults'})", file=sys.stderr)
    if not ok:
        sys.exit(1)
