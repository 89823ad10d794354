"""The chart and the fleet's rollout state: refused when replicas would disagree, Redis wired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import (
    CHART,
    NAMESPACE,
    container,
    of_kind,
    one,
    render,
    run_helm,
    switchyard_yaml,
    template_result,
    write_values,
)

CANARY_ROUTE = {
    "name": "medical",
    "backends": [{"backend": "stable"}],
    "canary": {"backend": "next", "percent": 5, "steps": [5, 50, 100]},
}


def values(**extra: Any) -> dict[str, Any]:
    config = {
        "backends": [
            {"name": "stable", "address": "llm.svc:8000"},
            {"name": "next", "address": "llm-next.svc:8000"},
        ],
        "routes": [CANARY_ROUTE],
        "default_route": "medical",
        **extra.pop("config", {}),
    }
    return {"config": config, **extra}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ({"replicaCount": 2}, "replicaCount is 2"),
        ({"replicaCount": 1, "autoscaling": {"enabled": True}}, "autoscaling.enabled is true"),
    ],
)
def test_canary_with_several_replicas_in_memory_is_refused(
    tmp_path: Path, case: dict[str, Any], expected: str
) -> None:
    result = template_result(write_values(tmp_path, "v", values(**case)))
    assert result.returncode != 0
    assert "config.state.store: routes medical have a canary and " + expected in result.stderr


def test_one_replica_or_a_shared_store_renders(tmp_path: Path) -> None:
    single = render(write_values(tmp_path, "one", values(replicaCount=1)))
    assert "state" not in yaml.safe_load(switchyard_yaml(single)) or (
        yaml.safe_load(switchyard_yaml(single))["state"].get("store", "memory") == "memory"
    )
    shared = values(
        replicaCount=4,
        stateStore={"passwordSecret": {"name": "team-redis", "key": "pw"}},
        config={"state": {"store": "redis", "redis_url": "redis://redis.infra:6379/1"}},
    )
    docs = render(write_values(tmp_path, "shared", shared))
    state = yaml.safe_load(switchyard_yaml(docs))["state"]
    assert state == {
        "store": "redis",
        "redis_url": "redis://redis.infra:6379/1",
        "password_env": "SWITCHYARD_REDIS_PASSWORD",
    }
    env = {e["name"]: e for e in container(docs, "switchyard")["env"]}
    assert env["SWITCHYARD_REDIS_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "team-redis", "key": "pw"}
    }
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert not of_kind(docs, "StatefulSet")  # the team's own Redis, none in the release


def test_the_in_release_redis_is_persistent_private_and_wired(tmp_path: Path) -> None:
    docs = render(write_values(tmp_path, "r", values(replicaCount=3, redis={"enabled": True})))
    redis = one(docs, "StatefulSet")
    name = redis["metadata"]["name"]
    state = yaml.safe_load(switchyard_yaml(docs))["state"]
    assert state["store"] == "redis" and state["redis_url"] == f"redis://{name}:6379/0"
    spec = redis["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    assert "--appendonly yes" in server["args"][0]
    assert "$REDIS_PASSWORD" in server["args"][0] and "requirepass" not in " ".join(
        server["command"]
    )
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "1Gi"
    }
    # The pods of the release's Deployment are not Redis's, nor the other way round.
    deployment = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert redis["spec"]["selector"]["matchLabels"] != deployment
    secret = one(docs, "Secret")
    assert secret["metadata"]["name"] == name and secret["data"]["password"]
    env = {e["name"]: e for e in container(docs, "switchyard")["env"]}
    assert env["SWITCHYARD_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": name,
        "key": "password",
    }
    (policy,) = [p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == name]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": deployment}}]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"state": {"store": "memory"}}, "config.state.store: redis.enabled runs a Redis"),
        (
            {"state": {"redis_url": "redis://elsewhere:6379/0"}},
            "config.state.redis_url: set by the chart when redis.enabled",
        ),
    ],
)
def test_in_release_redis_conflicts_name_the_key(
    tmp_path: Path, config: dict[str, Any], expected: str
) -> None:
    result = template_result(
        write_values(tmp_path, "v", values(redis={"enabled": True}, config=config))
    )
    assert result.returncode != 0 and expected in result.stderr


def test_a_change_of_state_store_restarts_the_pods(tmp_path: Path) -> None:
    def checksum(url: str) -> str:
        docs = render(
            write_values(
                tmp_path,
                url.split("/")[2].replace(":", "-"),
                values(config={"state": {"store": "redis", "redis_url": url}}),
            )
        )
        annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations)

    assert checksum("redis://a:6379/0") != checksum("redis://b:6379/0")


def _notes(tmp_path: Path, name: str, **extra: Any) -> str:
    path = write_values(tmp_path, name, values(**extra))
    result = run_helm(
        "install", "sy", str(CHART), "-n", NAMESPACE, "--dry-run=client", "-f", str(path)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout[result.stdout.index("NOTES:") :]


def test_notes_say_one_pod_acts_for_the_fleet_only_when_the_state_is_shared(
    tmp_path: Path,
) -> None:
    shared = _notes(tmp_path, "shared", replicaCount=3, redis={"enabled": True})
    assert "through any one pod acts on the whole fleet" in shared
    assert "act on all of them" not in shared
    alone = _notes(tmp_path, "alone", replicaCount=1)
    assert "each pod keeps its own rollout state" in alone
