"""The chart's security defaults, for every value set: Envoy's admin never leaves the
pod, Prometheus scrapes the stats port, a NetworkPolicy is on, the admin token and the
ext_proc certificates come from Secrets."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config import parse_config
from extproc.envoy_config import render as render_envoy
from tests.helm.conftest import (
    CHART,
    EXTPROC_ONLY,
    FULL,
    container,
    of_kind,
    one,
    pod_spec,
    render,
    switchyard_yaml,
    template_result,
    write_values,
)
from tests.helm.test_docs import _example_values

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def _value_sets(tmp_path: Path) -> dict[str, tuple[Path, ...]]:
    return {
        "default": (),
        "full": (FULL,),
        "extproc-only": (EXTPROC_ONLY,),
        "docs example": (write_values(tmp_path, "docs", yaml.safe_load(_example_values())),),
    }


CASES = ["default", "full", "extproc-only", "docs example"]


def _values(values: tuple[Path, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = yaml.safe_load(yaml.safe_dump(DEFAULTS))
    for path in values:
        for key, value in yaml.safe_load(path.read_text()).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def _host(address: str) -> str:
    return address.rpartition(":")[0].strip("[]")


@pytest.mark.parametrize("case", CASES)
def test_envoy_admin_is_bound_to_loopback_only(case: str, tmp_path: Path) -> None:
    values = _value_sets(tmp_path)[case]
    docs = render(*values)
    ports = _values(values)["ports"]
    cfg = yaml.safe_load(switchyard_yaml(docs))
    spec = pod_spec(docs)
    containers = spec.get("initContainers", []) + spec["containers"]
    exposed = {p["containerPort"] for c in containers for p in c.get("ports", [])}
    assert ports["admin"] not in exposed, "the admin port must not be a container port"
    for service in of_kind(docs, "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] not in ("admin", ports["admin"]), service["metadata"]
    if "envoy" not in cfg:
        assert case == "extproc-only", "sidecar mode renders an Envoy"
        return
    bootstrap = render_envoy(parse_config(cfg, "configmap"))
    admin = bootstrap["admin"]["address"]["socket_address"]
    assert ipaddress.ip_address(admin["address"]).is_loopback
    assert admin["port_value"] == ports["admin"]
    for listener in bootstrap["static_resources"]["listeners"]:
        assert listener["address"]["socket_address"]["port_value"] != ports["admin"]


@pytest.mark.parametrize("case", ["default", "full", "docs example"])
def test_prometheus_and_probes_use_the_stats_port(case: str, tmp_path: Path) -> None:
    values = _value_sets(tmp_path)[case]
    docs = render(*values)
    stats_port = _values(values)["ports"]["stats"]
    cfg = yaml.safe_load(switchyard_yaml(docs))
    assert cfg["envoy"]["stats_listen"] == f"0.0.0.0:{stats_port}"
    envoy = container(docs, "envoy")
    assert {"name": "stats", "containerPort": stats_port, "protocol": "TCP"} in envoy["ports"]
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "stats"}
    assert envoy["livenessProbe"]["tcpSocket"] == {"port": "stats"}
    monitors = of_kind(docs, "ServiceMonitor")
    if monitors:
        (monitor,) = monitors
        (scrape,) = [e for e in monitor["spec"]["endpoints"] if e["path"] == "/stats/prometheus"]
        (service,) = [
            s for s in of_kind(docs, "Service") if s["metadata"]["name"].endswith("-metrics")
        ]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == scrape["port"]]
        assert (port["port"], port["targetPort"]) == (stats_port, "stats")


@pytest.mark.parametrize("case", CASES)
def test_a_network_policy_guards_every_port(case: str, tmp_path: Path) -> None:
    values = _value_sets(tmp_path)[case]
    docs = render(*values)
    (policy,) = [
        d["spec"]
        for d in docs
        if d["kind"] == "NetworkPolicy" and not d["metadata"]["name"].endswith("-redis")
    ]
    assert policy["policyTypes"] == ["Ingress"]
    assert (
        policy["podSelector"]["matchLabels"]
        == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    open_to_all = [rule for rule in policy["ingress"] if not rule.get("from")]
    opened = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert "admin" not in opened
    # Only the product's own port may be open to anyone (sidecar mode, httpFrom empty).
    assert all(rule["ports"] == [{"port": "http", "protocol": "TCP"}] for rule in open_to_all)
    scrape = [r for r in policy["ingress"] if {"port": "metrics", "protocol": "TCP"} in r["ports"]]
    assert scrape and scrape[0]["from"] == _values(values)["networkPolicy"]["metricsFrom"]


def test_default_policy_lets_prometheus_in_by_namespace_and_label() -> None:
    policy = one(render(), "NetworkPolicy")["spec"]
    (scrape,) = [r for r in policy["ingress"] if r.get("from")]
    assert {p["port"] for p in scrape["ports"]} == {"metrics", "stats"}
    assert scrape["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]


def test_admin_token_comes_from_a_secret_under_the_configured_name() -> None:
    docs = render(FULL)
    cfg = yaml.safe_load(switchyard_yaml(docs))
    env = {e["name"]: e for e in container(docs, "switchyard")["env"]}
    token = env[cfg["server"]["admin_token_env"]]
    assert token["valueFrom"] == {
        "secretKeyRef": {"name": "switchyard-admin", "key": "rollout-token"}
    }
    assert "SWITCHYARD_FORCE_TOKEN" in env, "extraEnv is kept"
    default_env = {e["name"] for e in container(render(), "switchyard")["env"]}
    assert default_env == {"POD_NAME"}, "no Secret, no variable"


def test_ext_proc_certificates_come_from_a_secret(tmp_path: Path) -> None:
    docs = render(EXTPROC_ONLY)
    cfg = yaml.safe_load(switchyard_yaml(docs))
    tls = cfg["server"]["tls"]
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "switchyard-ext-proc-tls"
    (mount,) = [m for m in container(docs, "switchyard")["volumeMounts"] if m["name"] == "tls"]
    assert mount["readOnly"] is True
    assert tls == {
        "cert_file": f"{mount['mountPath']}/tls.crt",
        "key_file": f"{mount['mountPath']}/tls.key",
        "client_ca_file": f"{mount['mountPath']}/ca.crt",
    }
    (service,) = [
        s for s in of_kind(docs, "Service") if s["metadata"]["name"].endswith("switchyard")
    ]
    assert "appProtocol" not in service["spec"]["ports"][0], "h2c would say plaintext"

    plain = yaml.safe_load(EXTPROC_ONLY.read_text())
    plain["extProcTLS"] = {"secretName": ""}
    docs = render(write_values(tmp_path, "plain", plain))
    assert "tls" not in yaml.safe_load(switchyard_yaml(docs))["server"]
    assert container(docs, "switchyard")["readinessProbe"]["grpc"] == {
        "port": 50051,
        "service": "envoy.service.ext_proc.v3.ExternalProcessor",
    }


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda v: v.update(extProcTLS={"secretName": "tls"}),
            "extProcTLS.secretName: only with mode: extproc-only",
        ),
        (
            lambda v: v["config"]["envoy"].update(admin="0.0.0.0:9901"),
            "config.envoy.admin: set by the chart",
        ),
        (
            lambda v: v["config"]["envoy"].update(stats_listen="0.0.0.0:9"),
            "config.envoy.stats_listen: set by the chart",
        ),
        (
            lambda v: v["config"]["server"].update(admin_token_env=None),
            "config.server.admin_token_env: the chart passes adminToken's Secret",
        ),
    ],
)
def test_security_mistakes_fail_naming_the_key(edit: Any, expected: str, tmp_path: Path) -> None:
    _fails_naming(edit, expected, tmp_path)


def _fails_naming(edit: Any, expected: str, tmp_path: Path) -> None:
    """The full values, edited, fail `helm template` with `expected` in the message."""
    values = yaml.safe_load(FULL.read_text())
    edit(values)
    result = template_result(write_values(tmp_path, "bad", values))
    assert result.returncode != 0 and expected in result.stderr, result.stderr


def test_extension_policy_with_tls_needs_the_ca_the_gateway_checks(tmp_path: Path) -> None:
    values = yaml.safe_load(EXTPROC_ONLY.read_text())
    values["extProcTLS"]["caConfigMap"] = ""
    result = template_result(write_values(tmp_path, "bad", values))
    assert result.returncode != 0
    assert "extProcTLS.caConfigMap: with extensionPolicy.enabled" in result.stderr


ALICE = "alice " + "ab" * 32


def test_client_keys_come_from_a_secret_mounted_as_a_directory(tmp_path: Path) -> None:
    plain = render(FULL)
    values = yaml.safe_load(FULL.read_text())
    values["auth"] = {"enabled": True, "keys": [ALICE]}
    docs = render(write_values(tmp_path, "auth", values))
    cfg = yaml.safe_load(switchyard_yaml(docs))
    (secret,) = [s for s in of_kind(docs, "Secret") if s["metadata"]["name"].endswith("keys")]
    assert secret["stringData"]["clients.keys"].split() == ALICE.split()
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["client-keys"]["secret"]["secretName"] == secret["metadata"]["name"]
    mounts = {m["name"]: m for m in container(docs, "switchyard")["volumeMounts"]}
    assert "subPath" not in mounts["client-keys"]  # an edited Secret reaches the file
    assert cfg["auth"] == {"keys_file": f"{mounts['client-keys']['mountPath']}/clients.keys"}
    # The pre-install check reads the same lines (the chart's Secret is not there yet).
    (job,) = of_kind(docs, "Job")
    check_volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert check_volumes["client-keys"]["configMap"]["items"][0]["path"] == "clients.keys"
    # Who may reach which port is unchanged.
    assert of_kind(docs, "NetworkPolicy") == of_kind(plain, "NetworkPolicy")

    values["auth"] = {"enabled": True, "existingSecret": "team-keys", "key": "keys"}
    docs = render(write_values(tmp_path, "existing", values))
    assert not [s for s in of_kind(docs, "Secret") if s["metadata"]["name"].endswith("keys")]
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["client-keys"]["secret"]["secretName"] == "team-keys"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda v: v.update(auth={"enabled": True}), "expected auth.existingSecret or auth.keys"),
        (
            lambda v: (
                v.update(auth={"enabled": True, "keys": [ALICE]}),
                v["config"].update(auth={"keys_file": "/x"}),
            ),
            "config.auth: set by the chart from auth",
        ),
    ],
)
def test_auth_mistakes_fail_naming_the_key(edit: Any, expected: str, tmp_path: Path) -> None:
    _fails_naming(edit, expected, tmp_path)


def test_auth_needs_the_envoy_switchyard_configures(tmp_path: Path) -> None:
    values = yaml.safe_load(EXTPROC_ONLY.read_text())
    values["auth"] = {"enabled": True, "keys": [ALICE]}
    result = template_result(write_values(tmp_path, "bad", values))
    assert result.returncode != 0 and "auth.enabled: only with mode: sidecar" in result.stderr
