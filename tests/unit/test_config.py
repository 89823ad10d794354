from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from extproc.config import load_config, parse_config, read_keys_file
from extproc.errors import ConfigError

GOOD = {
    "backends": [
        {"name": "a", "address": "127.0.0.1:1"},
        {"name": "b", "address": "llm.internal:443", "tls": True},
    ],
    "routes": [
        {
            "name": "r1",
            "match": {"keywords": ["x"]},
            "backends": [{"backend": "a"}],
            "canary": {"backend": "b", "percent": 5, "steps": [5, 10, 100]},
        },
        {"name": "dflt", "backends": [{"backend": "a", "weight": 3}]},
    ],
    "default_route": "dflt",
}


def _issues(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "switchyard.yaml")
    assert "switchyard.yaml" in str(info.value)
    return [str(issue) for issue in info.value.issues]


def test_a_good_config_loads_with_defaults_from_the_model() -> None:
    cfg = parse_config(GOOD, "x")
    assert cfg.server.listen == "127.0.0.1:50051"
    assert cfg.route("r1").canary is not None
    assert cfg.processor_address == cfg.server.listen


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["routes"][0]["backends"].append({"backend": "ghost"}),
            "routes \"r1\".backends[1].backend: unknown backend 'ghost'; expected one of a, b",
        ),
        (
            lambda d: d.update(passthrough=[{"path": "/v1/embeddings", "backend": "ghost"}]),
            "passthrough[0].backend: unknown backend 'ghost'",
        ),
        (
            lambda d: d.update(auth={"keys_file": "k"}, envoy={"xds": False}),
            "auth: expected envoy.xds true",
        ),
        (
            lambda d: d.update(passthrough=[{"path": "/v1/models", "backend": "a"}]),
            "passthrough[0].path: '/v1/models' is already served",
        ),
        (
            lambda d: d.update(passthrough=[{"path": "/v1/files/", "backend": "a"}]),
            "passthrough[0].path: expected a path starting with /",
        ),
        (
            lambda d: d["routes"][1]["backends"][0].update(weight=-1),
            'routes "dflt".backends[0].weight: expected a number >= 1, got -1',
        ),
        (
            lambda d: d["routes"][0]["canary"].update(percent=150),
            'routes "r1".canary.percent: expected a number <= 100',
        ),
        (
            lambda d: d["routes"][0]["canary"].update(steps=[10, 5]),
            'routes "r1".canary.steps: expected strictly increasing percentages',
        ),
        (
            lambda d: d["routes"][0].update(match={}),
            'routes "r1".match: expected at least one of label, keywords, regex, model, header, '
            "language, any_of",
        ),
        (
            lambda d: d["routes"][0].update(match={"keywords": ["x"], "language": ["fr", "xx"]}),
            'routes "r1".match.language: unknown language xx; expected codes the language guess '
            "gives: ar, de, en",
        ),
        (
            lambda d: d["routes"][0].update(match={"any_of": [{"keywords": ["x"]}]}),
            'routes "r1".match.any_of: expected at least 2 entries',
        ),
        (
            lambda d: d["routes"][0].update(
                match={"any_of": [{"keywords": ["x"]}, {"regex": "y", "label": "medical"}]}
            ),
            "routes \"r1\".match.any_of[1].label: unknown label 'medical'",
        ),
        (
            lambda d: d["routes"][0].update(
                match={"any_of": [{"keywords": ["x"]}, {"regex": "("}]}
            ),
            'routes "r1".match.any_of[1].regex: expected a Python regular expression',
        ),
        (
            lambda d: d["routes"][0].update(match={"regex": "("}),
            'routes "r1".match.regex: expected a Python regular expression',
        ),
        (lambda d: d.update(default_route="nowhere"), "default_route: unknown route 'nowhere'"),
        (
            lambda d: d["backends"][0].update(address="localhost"),
            "backends \"a\".address: expected host:port, got 'localhost'",
        ),
        (lambda d: d.update(sever={}), "sever: unknown key"),
        (
            lambda d: d["routes"][0].update(match={"label": ["medical"]}),
            "routes \"r1\".match.label: unknown label 'medical'; expected one of other",
        ),
        (
            lambda d: d["backends"].append({"name": "a", "address": "127.0.0.1:2"}),
            "backends \"a\".name: duplicate name 'a'",
        ),
        (
            lambda d: d.update(session={"sources": ["user", "header:X-Session"]}),
            "session.sources[1]: 'header:X-Session': expected header:<name>, cookie:<name>,"
            " user, client, first_message or fingerprint",
        ),
        (
            lambda d: d.update(session={"sources": ["user", "fingerprint", "user"]}),
            "session.sources: expected each entry once; repeated: user",
        ),
        (
            lambda d: d.update(session={"fingerprint": ["client_address", "ip"]}),
            "session.fingerprint[1]: 'ip': expected header:<name> (lower case), client_address,"
            " system_prompt or first_message",
        ),
        (
            lambda d: d.update(session={"fingerprint": []}),
            "session.fingerprint: expected at least 1 entry",
        ),
        (
            lambda d: d.update(envoy={"trusted_proxy_hops": -1}),
            "envoy.trusted_proxy_hops: expected a number >= 0, got -1",
        ),
        (
            lambda d: d.update(state={"store": "etcd"}),
            "state.store: expected 'memory' or 'redis', got 'etcd'",
        ),
        (
            lambda d: d.update(state={"store": "redis", "redis_url": "redis://:pw@r:6379/0"}),
            "state.redis_url: expected no password in the URL: set state.password_env instead",
        ),
        (
            lambda d: d.update(state={"redis_url": "http://r:6379"}),
            "state.redis_url: expected redis://host:port/db, rediss://host:port/db or unix:///path",
        ),
        (
            lambda d: d.update(state={"sync_interval_s": 2, "lease_ttl_s": 3}),
            "state: expected lease_ttl_s at least twice sync_interval_s",
        ),
        (
            lambda d: d.update(envoy={"admin": "0.0.0.0:9901"}),
            "envoy.admin: expected a loopback address",
        ),
        (
            lambda d: d.update(envoy={"admin": "10.1.2.3:9901"}),
            "envoy.admin: expected a loopback address",
        ),
        (
            lambda d: d.update(envoy={"stats_listen": "127.0.0.1:9901"}),
            "envoy: stats_listen: expected an address of its own",
        ),
        (
            lambda d: d.update(server={"admin_token_env": "not a name"}),
            "server.admin_token_env: expected an environment variable NAME",
        ),
        (
            lambda d: d.update(
                server={
                    "listen": "unix:/run/s.sock",
                    "tls": {"cert_file": "c", "key_file": "k", "client_ca_file": "ca"},
                }
            ),
            "server: tls: expected a host:port listen address",
        ),
        (
            lambda d: d.update(
                server={"listen": "unix:/run/s.sock"},
                envoy={
                    "processor_tls": {
                        "cert_file": "c",
                        "key_file": "k",
                        "ca_file": "ca",
                        "server_name": "switchyard",
                    }
                },
            ),
            "envoy.processor_tls: expected a host:port processor address",
        ),
    ],
)
def test_each_mistake_names_its_key_path(change, expected: str) -> None:
    import copy

    data = copy.deepcopy(GOOD)
    change(data)
    issues = _issues(data)
    assert any(issue.startswith(expected) for issue in issues), issues


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("routes:\n  - name: a\n   bad: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:3: column 4: invalid YAML" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "absent.yaml")


def test_relative_model_dir_resolves_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("classifier: {model: models/enc}\n")
    assert load_config(path).classifier.model == (tmp_path / "models/enc").resolve()


def test_loopback_admin_addresses_are_accepted() -> None:
    for address in ("127.0.0.1:9901", "127.0.0.5:9901", "[::1]:9901", "localhost:9901"):
        assert parse_config({"envoy": {"admin": address}}, "t").envoy.admin == address


def test_relative_tls_files_resolve_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "server: {listen: '0.0.0.0:50051', tls: {cert_file: tls/tls.crt, key_file: /k,"
        " client_ca_file: tls/ca.crt}}\n"
        "envoy: {processor_tls: {cert_file: e.crt, key_file: e.key, ca_file: ca.crt,"
        " server_name: switchyard}}\n"
    )
    cfg = load_config(path)
    assert cfg.server.tls is not None and cfg.envoy.processor_tls is not None
    assert cfg.server.tls.cert_file == (tmp_path / "tls/tls.crt").resolve()
    assert cfg.server.tls.key_file == Path("/k")
    assert cfg.envoy.processor_tls.ca_file == (tmp_path / "ca.crt").resolve()


def test_client_keys_come_from_the_keys_file_by_digest(tmp_path: Path) -> None:
    digest = "ab" * 32
    (tmp_path / "clients.keys").write_text(f"# ops\nalice {digest}  # laptop\n\n")
    (tmp_path / "switchyard.yaml").write_text(
        yaml.safe_dump({**GOOD, "auth": {"keys_file": "clients.keys"}})
    )
    cfg = load_config(tmp_path / "switchyard.yaml")
    assert cfg.auth is not None
    assert cfg.auth.keys_file == (tmp_path / "clients.keys").resolve()
    assert cfg.auth.clients == {digest: "alice"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice sk-plaintext-key\n", "line 1: expected `<name> <sha256 hex of the key>`"),
        (f"alice {'ab' * 32}\nalice {'cd' * 32}\n", "line 2: duplicate client or key"),
        (f"alice {'AB' * 32}\n", "line 1: expected"),
    ],
)
def test_a_bad_keys_file_names_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    keys = tmp_path / "clients.keys"
    keys.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_keys_file(keys)
    assert str(keys) in str(info.value)
    assert any(expected in str(issue) for issue in info.value.issues), info.value.issues


def test_a_duplicated_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "backends:\n  - {name: a, address: '127.0.0.1:1'}\n"
        "routes:\n  - {name: r1, match: {keywords: [x]}, backends: [{backend: a}]}\n"
        "default_route: r2\n"
        "routes:\n  - {name: r2, backends: [{backend: a}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:6: routes: duplicate key 'routes' (first at line 3)" in str(info.value)


def test_a_duplicated_key_deeper_down_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("server:\n  listen: '127.0.0.1:1'\n  drain_s: 1\n  listen: '127.0.0.1:2'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [(i.path, i.line) for i in info.value.issues] == [("server.listen", 4)]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("server:\n  <<: {drain_s: 1, grace_s: 2}\n  drain_s: 3\n")
    assert load_config(path).server.drain_s == 3


def test_errors_name_things_by_name_with_their_line_and_what_was_expected(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "backends:\n"
        "  - name: a\n    address: '127.0.0.1:1'\n"
        "  - name: clinical-v2\n    address: '127.0.0.1:2'\n"
        "    credential:\n      env: sk-live-0123456789\n"
        "routes:\n"
        "  - {name: clinical, match: {keywords: [x]}, backends: [{backend: clinicl-v2}]}\n"
        "  - {name: general, backends: [{backend: a}]}\n"
        "default_route: generl\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert (
        f'{path}:7: backends "clinical-v2".credential.env: expected an environment variable NAME'
        in text
    )
    assert "not a key value" in text and "sk-live" not in text  # a pasted key is not echoed
    path.write_text(path.read_text().replace("sk-live-0123456789", "CLINICAL_KEY"))
    with pytest.raises(ConfigError) as info2:
        load_config(path)
    issues = [str(issue) for issue in info2.value.issues]
    assert (
        "routes \"clinical\".backends[0].backend: unknown backend 'clinicl-v2'; "
        "did you mean 'clinical-v2'?" in issues
    )
    assert "default_route: unknown route 'generl'; did you mean 'general'?" in issues
    assert [issue.line for issue in info2.value.issues][:2] == [9, 11]


def test_a_misspelt_key_gets_the_closest_known_one() -> None:
    issues = _issues({"classifier": {"treshold": 0.3}})
    assert issues == ["classifier.treshold: unknown key; did you mean 'threshold'?"]


def test_warnings_for_labels_no_route_uses_and_routes_after_a_catch_all() -> None:
    from extproc.config import config_warnings

    data = {
        "labels": [
            {"name": "billing", "examples": ["refund"]},
            {"name": "cooking", "examples": ["pancakes"]},
        ],
        "backends": [{"name": "a", "address": "127.0.0.1:1"}],
        "routes": [
            {"name": "money", "match": {"label": "billing"}, "backends": [{"backend": "a"}]},
            {"name": "all", "match": {"regex": ".*"}, "backends": [{"backend": "a"}]},
            {"name": "late", "match": {"keywords": ["x"]}, "backends": [{"backend": "a"}]},
            {"name": "rest", "backends": [{"backend": "a"}]},
        ],
        "default_route": "rest",
    }
    warnings = [str(issue) for issue in config_warnings(parse_config(data, "t"))]
    assert warnings == [
        'labels "cooking": no route\'s match names this label: its prompts take the default route',
        "routes \"late\": no request reaches this route: route 'all' before it matches every "
        "request",
    ]


def test_an_example_given_twice_is_named_with_its_first_place() -> None:
    from extproc.config import config_warnings

    data = {
        "labels": [
            {"name": "billing", "examples": ["Refund my order", "Where is my invoice?"]},
            {"name": "support", "examples": ["reset my password", "  refund MY order "]},
            {"name": "other_desk", "examples": ["reset my password", "Reset my  password"]},
        ],
        "backends": [{"name": "a", "address": "127.0.0.1:1"}],
        "routes": [
            {
                "name": "r",
                "match": {"label": ["billing", "support", "other_desk"]},
                "backends": [{"backend": "a"}],
            },
            {"name": "rest", "backends": [{"backend": "a"}]},
        ],
        "default_route": "rest",
    }
    warnings = [str(issue) for issue in config_warnings(parse_config(data, "t"))]
    in_two = "a prompt like it goes to whichever label scores higher; keep it in one"
    assert warnings == [
        f'labels "support".examples[1]: repeats labels "billing".examples[0]: {in_two}',
        f'labels "other_desk".examples[0]: repeats labels "support".examples[0]: {in_two}',
        f'labels "other_desk".examples[1]: repeats labels "support".examples[0]: {in_two}',
    ]
    data["labels"] = [{"name": "billing", "examples": ["refund", "invoice", "Refund"]}]
    data["routes"][0]["match"] = {"label": "billing"}
    (warning,) = [str(issue) for issue in config_warnings(parse_config(data, "t"))]
    assert warning == (
        'labels "billing".examples[2]: repeats labels "billing".examples[0]: a repeat adds '
        "nothing and makes the label look tighter than it is"
    )


def test_a_model_without_the_encoders_subfolder_is_named(tmp_path: Path) -> None:
    from extproc.config import model_issues

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"")
    path = tmp_path / "s.yaml"
    path.write_text("classifier: {model: m}\nlabels: [{name: a, examples: [x]}]\n")
    (issue,) = model_issues(load_config(path))
    assert issue.path == "classifier.model"
    assert f"has no {tmp_path / 'm' / 'use' / 'model.onnx'}" in issue.message
    path.write_text("classifier: {model: m, encoder: minilm}\nlabels: [{name: a, examples: [x]}]\n")
    assert model_issues(load_config(path)) == []
