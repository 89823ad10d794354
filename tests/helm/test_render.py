"""The chart renders, lints, and its objects are valid and hang together."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helm.conftest import (
    CHART,
    EXTPROC_ONLY,
    FULL,
    NAMESPACE,
    container,
    is_hook,
    of_kind,
    one,
    pod_spec,
    render,
    run_helm,
    switchyard_yaml,
    tool,
)

VALUES = {"default": (), "full": (FULL,), "extproc-only": (EXTPROC_ONLY,)}
BUILTIN_API_VERSIONS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}


@pytest.mark.parametrize("case", VALUES)
def test_helm_lint_strict(case: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in VALUES[case]:
        args += ["-f", str(path)]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("case", "kinds"),
    [
        (
            "default",
            {
                "ConfigMap",
                "Job",
                "Deployment",
                "Service",
                "ServiceAccount",
                "PodDisruptionBudget",
                "NetworkPolicy",
            },
        ),
        (
            "full",
            {
                "ConfigMap",
                "Job",
                "Deployment",
                "Service",
                "ServiceAccount",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "ServiceMonitor",
                "PrometheusRule",
                "NetworkPolicy",
                "Secret",
                "StatefulSet",
            },
        ),
        (
            "extproc-only",
            {
                "ConfigMap",
                "Job",
                "Deployment",
                "Service",
                "ServiceAccount",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "ServiceMonitor",
                "PrometheusRule",
                "NetworkPolicy",
                "EnvoyExtensionPolicy",
                "ReferenceGrant",
                "BackendTLSPolicy",
            },
        ),
    ],
)
def test_renders_the_expected_kinds(case: str, kinds: set[str]) -> None:
    assert {doc["kind"] for doc in render(*VALUES[case])} == kinds


@pytest.mark.parametrize("case", VALUES)
def test_builtin_kinds_pass_kubernetes_validate(case: str, tmp_path: Path) -> None:
    docs = [d for d in render(*VALUES[case]) if d["apiVersion"] in BUILTIN_API_VERSIONS]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", "1.35.0", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count(" passed for resource ") == len(docs), output


def test_servicemonitor_scrapes_ports_of_the_metrics_service() -> None:
    for values in (FULL,), (EXTPROC_ONLY,):
        docs = render(*values)
        monitor = one(docs, "ServiceMonitor")
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            s
            for s in of_kind(docs, "Service")
            if selector.items() <= s["metadata"]["labels"].items()
        ]
        assert len(services) == 1, "the ServiceMonitor must select exactly the metrics Service"
        ports = {p["name"]: p for p in services[0]["spec"]["ports"]}
        paths = {e["port"]: e["path"] for e in monitor["spec"]["endpoints"]}
        assert set(paths) <= set(ports)
        assert paths["metrics"] == "/metrics"
    sidecar = render(FULL)
    endpoints = one(sidecar, "ServiceMonitor")["spec"]["endpoints"]
    assert {e["port"]: e["path"] for e in endpoints} == {
        "metrics": "/metrics",
        "metrics-w1": "/metrics",  # the second worker's (config.server.workers: 2)
        "envoy-stats": "/stats/prometheus",
    }


def test_prometheusrule_carries_the_alerts_file() -> None:
    rule = one(render(FULL), "PrometheusRule")
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_envoy_extension_policy_points_at_the_grpc_service() -> None:
    docs = render(EXTPROC_ONLY)
    policy = one(docs, "EnvoyExtensionPolicy")
    assert policy["apiVersion"] == "gateway.envoyproxy.io/v1alpha1"
    assert policy["metadata"]["namespace"] == "gateways"
    spec = policy["spec"]
    assert spec["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "llm-gateway"}
    ]
    (ext_proc,) = spec["extProc"]
    (ref,) = ext_proc["backendRefs"]
    (service,) = [
        s for s in of_kind(docs, "Service") if not s["metadata"]["name"].endswith("-metrics")
    ]
    (port,) = service["spec"]["ports"]
    assert (ref["kind"], ref["name"], ref["namespace"], ref["port"]) == (
        "Service",
        service["metadata"]["name"],
        NAMESPACE,
        port["port"],
    )
    assert "appProtocol" not in port, "mutual TLS: not h2c"
    backend_tls = one(docs, "BackendTLSPolicy")
    assert backend_tls["metadata"]["namespace"] == NAMESPACE
    assert backend_tls["spec"]["targetRefs"] == [
        {"group": "", "kind": "Service", "name": service["metadata"]["name"]}
    ]
    assert backend_tls["spec"]["validation"] == {
        "hostname": f"{service['metadata']['name']}.{NAMESPACE}.svc",
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "switchyard-ca"}],
    }
    assert ext_proc["processingMode"] == {"request": {"body": "Buffered"}}
    assert ext_proc["failOpen"] is True and ext_proc["messageTimeout"] == "500ms"
    grant = one(docs, "ReferenceGrant")
    assert grant["metadata"]["namespace"] == NAMESPACE
    assert grant["spec"]["from"] == [
        {"group": "gateway.envoyproxy.io", "kind": "EnvoyExtensionPolicy", "namespace": "gateways"}
    ]
    assert grant["spec"]["to"] == [
        {"group": "", "kind": "Service", "name": service["metadata"]["name"]}
    ]


@pytest.mark.parametrize("case", VALUES)
def test_every_container_is_locked_down(case: str) -> None:
    spec = pod_spec(render(*VALUES[case]))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    for item in spec.get("initContainers", []) + spec["containers"]:
        sc = item["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, item["name"]
        assert sc["readOnlyRootFilesystem"] is True, item["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], item["name"]
        assert "runAsUser" not in sc, "one uid for the pod: Envoy must open switchyard's socket"
        assert item["resources"]["requests"] and item["resources"]["limits"], item["name"]


@pytest.mark.parametrize(
    ("case", "seconds"),
    # Envoy's preStop drain (sidecar only) + server.drain_s + server.grace_s + 5 s margin.
    [("default", 30 + 5 + 30 + 5), ("full", 45 + 3 + 20 + 5), ("extproc-only", 10 + 30 + 5)],
)
def test_termination_grace_covers_the_drain(case: str, seconds: int) -> None:
    docs = render(*VALUES[case])
    spec = pod_spec(docs)
    assert spec["terminationGracePeriodSeconds"] == seconds
    server = yaml.safe_load(switchyard_yaml(docs))["server"]
    needed = server["drain_s"] + server["grace_s"]
    if case != "extproc-only":
        sleep = container(docs, "envoy")["lifecycle"]["preStop"]["sleep"]["seconds"]
        needed += sleep
    assert spec["terminationGracePeriodSeconds"] >= math.ceil(needed)


def test_sidecar_pod_layout() -> None:
    docs = render()
    spec = pod_spec(docs)
    init = [c["name"] for c in spec["initContainers"]]
    assert init == ["render-envoy-config", "switchyard"], (
        "render first, then switchyard as a native sidecar"
    )
    assert container(docs, "switchyard")["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["envoy"]
    cfg = yaml.safe_load(switchyard_yaml(docs))
    socket = cfg["server"]["listen"].removeprefix("unix:")
    assert cfg["server"]["listen"].startswith("unix:")
    volumes = {v["name"]: v for v in spec["volumes"]}
    for name in ("switchyard", "envoy"):
        mounts = [
            m
            for m in container(docs, name)["volumeMounts"]
            if socket.startswith(m["mountPath"] + "/")
        ]
        assert len(mounts) == 1 and "emptyDir" in volumes[mounts[0]["name"]], name
    assert cfg["envoy"]["listen"] == "0.0.0.0:8080" and cfg["envoy"]["admin"] == "127.0.0.1:9901"
    assert cfg["envoy"]["stats_listen"] == "0.0.0.0:9902"
    assert "processor" not in cfg["envoy"], "Envoy reaches switchyard at server.listen"
    (service,) = [s["spec"]["ports"] for s in of_kind(docs, "Service")]
    assert service == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    envoy = container(docs, "envoy")
    assert {p["name"]: p["containerPort"] for p in envoy["ports"]} == {"http": 8080, "stats": 9902}
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "stats"}
    probe = container(docs, "switchyard")["readinessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "metrics"}
    assert cfg["server"]["metrics_listen"] == "0.0.0.0:9464"


def test_tcp_transport_stays_inside_the_pod() -> None:
    docs = render(FULL)
    cfg = yaml.safe_load(switchyard_yaml(docs))
    assert cfg["server"]["listen"] == "127.0.0.1:50055"
    assert cfg["envoy"]["listen"] == "0.0.0.0:10000" and cfg["envoy"]["admin"] == "127.0.0.1:19000"
    assert all(v["name"] != "socket" for v in pod_spec(docs)["volumes"])
    assert "replicas" not in one(docs, "Deployment")["spec"], "the HPA owns the replica count"


def test_extproc_only_pod_layout() -> None:
    docs = render(EXTPROC_ONLY)
    spec = pod_spec(docs)
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["switchyard"]
    cfg = yaml.safe_load(switchyard_yaml(docs))
    assert cfg["server"]["listen"] == "0.0.0.0:50051"
    # The gateway owns Envoy's routes: reloads that disagree with them are refused.
    assert cfg["envoy"] == {"xds": False}
    item = container(docs, "switchyard")
    assert {p["name"]: p["containerPort"] for p in item["ports"]} == {
        "metrics": 9464,
        "grpc": 50051,
    }
    # With mutual TLS on (extProcTLS), the kubelet's gRPC probe cannot connect.
    assert item["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    policy = one(docs, "NetworkPolicy")["spec"]["ingress"]
    grpc_rule = next(
        rule for rule in policy if rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    )
    assert grpc_rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "envoy-gateway-system"
    }


def test_config_and_envoy_file_paths_agree() -> None:
    docs = render()
    spec = pod_spec(docs)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert (
        volumes["config"]["configMap"]["name"]
        == one([d for d in docs if not is_hook(d)], "ConfigMap")["metadata"]["name"]
    )

    def mount_of(item: dict, path: str) -> str:
        (mount,) = [m for m in item["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
        assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
        assert path.removeprefix(mount["mountPath"] + "/") in (
            one([d for d in docs if not is_hook(d)], "ConfigMap")["data"]
            if mount["name"] == "config"
            else {path.rsplit("/", 1)[1]}
        )
        return mount["name"]

    render_args = container(docs, "render-envoy-config")["args"]
    assert render_args[0] == "envoy"
    config_file = render_args[render_args.index("-c") + 1]
    envoy_file = render_args[render_args.index("-o") + 1]
    assert mount_of(container(docs, "render-envoy-config"), config_file) == "config"
    assert mount_of(container(docs, "render-envoy-config"), envoy_file) == "envoy-config"
    serve = container(docs, "switchyard")["args"]
    assert serve[:2] == ["serve", "-c"] and serve[2] == config_file
    assert mount_of(container(docs, "switchyard"), config_file) == "config"
    envoy = container(docs, "envoy")
    assert envoy["args"][envoy["args"].index("-c") + 1] == envoy_file
    assert mount_of(envoy, envoy_file) == "envoy-config"


def test_extproc_only_notes_say_what_to_point_at_switchyard() -> None:
    result = run_helm(
        "install", "sy", str(CHART), "-n", NAMESPACE, "--dry-run=client", "-f", str(EXTPROC_ONLY)
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout[result.stdout.index("NOTES:") :]
    for text in (
        "sy-switchyard.llm.svc:50051",
        "request_header_mode: SEND",
        "request_body_mode: BUFFERED",
        "clear_route_cache",
        "x-switchyard-route",
        "x-switchyard-cohort",
        "x-switchyard-sticky",
        "Gateway/llm-gateway",
    ):
        assert text in notes, text
