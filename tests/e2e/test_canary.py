"""Canary cohorts and sticky sessions through real Envoys (weighted clusters do the forwarding)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, free_port, http_post, make_config, running_stack

pytestmark = pytest.mark.e2e

ROUTES = [
    {
        "name": "clinical",
        "match": {"keywords": ["symptom"]},
        "backends": [{"backend": "med-v1"}],
        "canary": {
            "backend": "med-v2",
            "percent": 5,
            "steps": [5, 10, 50, 100],
            "auto": False,
            "allow": {"users": ["internal-tester"]},
        },
    },
    {
        "name": "support",
        "match": {"keywords": ["invoice"]},
        "backends": [
            {"backend": "selfhosted", "weight": 70},
            {"backend": "api-a", "weight": 20},
            {"backend": "api-b", "weight": 10},
        ],
    },
    {"name": "general", "backends": [{"backend": "cheap"}]},
]
BACKENDS = ["med-v1", "med-v2", "selfhosted", "api-a", "api-b", "cheap"]
TOKEN = "s3cret-tester-token"


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def backends_by_session(
    stack: Stack, sessions: list[str], prompt: str, repeats: int = 1
) -> dict[str, set[str]]:
    def one(session: str) -> tuple[str, set[str]]:
        seen = set()
        for turn in range(repeats):
            reply = stack.client.chat(
                prompt, *(["and then?"] * turn), headers={"x-session-id": session}
            )
            assert reply.status == 200, reply.body
            seen.add(reply.backend)
        return session, seen

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, sessions))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = make_config(BACKENDS, ROUTES, "general")
    with running_stack(
        tmp_path_factory.mktemp("canary"), config, env={"SWITCHYARD_FORCE_TOKEN": TOKEN}
    ) as stack:
        yield stack


def test_five_percent_canary_over_2000_sessions_is_sticky(stack: Stack) -> None:
    sessions = [f"user-{i}" for i in range(2000)]
    seen = backends_by_session(stack, sessions, "symptom: headache", repeats=2)
    assert all(len(backends) == 1 for backends in seen.values()), "a session changed backend"
    canary = sum(backends == {"med-v2"} for backends in seen.values())
    assert within_binomial(canary, 2000, 0.05), canary
    # The canary's share is visible in Envoy's per-cluster stats too.
    stats = stack.envoy_stats()
    assert stats["cluster.med-v2.upstream_rq_total"] >= 2 * canary


def test_raising_the_share_keeps_canary_sessions_and_rollback_sends_all_to_stable(
    stack: Stack,
) -> None:
    sessions = [f"grow-{i}" for i in range(600)]
    before = backends_by_session(stack, sessions, "symptom: cough")
    canary_before = {s for s, b in before.items() if b == {"med-v2"}}
    assert canary_before
    assert http_post(stack.metrics_port, "/rollout/clinical/promote")[0] == 200  # 5 % -> 10 %
    after = backends_by_session(stack, sessions, "symptom: cough")
    canary_after = {s for s, b in after.items() if b == {"med-v2"}}
    assert canary_before < canary_after
    assert within_binomial(len(canary_after), 600, 0.10)
    assert http_post(stack.metrics_port, "/rollout/clinical/rollback")[0] == 200
    rolled_back = backends_by_session(stack, sessions, "symptom: cough")
    assert all(b == {"med-v1"} for b in rolled_back.values())
    assert (
        'switchyard_rollbacks_total{reason="operator",route="clinical"} 1.0' in stack.metrics_text()
    )
    assert http_post(stack.metrics_port, "/rollout/clinical/reset")[0] == 200
    reset = backends_by_session(stack, sessions, "symptom: cough")
    assert {s for s, b in reset.items() if b == {"med-v2"}} == canary_before


def test_70_20_10_split_is_honoured_and_sticky(stack: Stack) -> None:
    sessions = [f"split-{i}" for i in range(1500)]
    seen = backends_by_session(stack, sessions, "my invoice is wrong", repeats=2)
    assert all(len(b) == 1 for b in seen.values())
    counts = Counter(next(iter(b)) for b in seen.values())
    for backend, share in (("selfhosted", 0.7), ("api-a", 0.2), ("api-b", 0.1)):
        assert within_binomial(counts[backend], 1500, share), counts


def test_cohort_is_forced_only_with_the_token(stack: Stack) -> None:
    stable_sessions = [
        s
        for s, b in backends_by_session(
            stack, [f"force-{i}" for i in range(40)], "symptom: rash"
        ).items()
        if b == {"med-v1"}
    ]
    session = stable_sessions[0]
    forced = {"x-session-id": session, "x-switchyard-force-cohort": "canary"}
    assert stack.client.chat("symptom: rash", headers=forced).backend == "med-v1"
    wrong = {**forced, "x-switchyard-token": "guess"}
    assert stack.client.chat("symptom: rash", headers=wrong).backend == "med-v1"
    right = {**forced, "x-switchyard-token": TOKEN}
    reply = stack.client.chat("symptom: rash", headers=right)
    assert (reply.backend, reply.cohort) == ("med-v2", "canary")
    # A client cannot pick its cohort header directly either.
    spoof = {"x-session-id": session, "x-switchyard-cohort": "canary"}
    assert stack.client.chat("symptom: rash", headers=spoof).backend == "med-v1"


def test_allowlisted_users_get_the_canary(stack: Stack) -> None:
    reply = stack.client.chat("symptom: fever", user="internal-tester")
    assert reply.backend == "med-v2"


def test_two_independent_envoy_switchyard_pairs_agree(tmp_path: Path) -> None:
    config = make_config(BACKENDS, ROUTES, "general")
    with running_stack(tmp_path / "a", config) as first:
        second_config = {
            **config,
            "server": {
                **config["server"],
                "listen": f"127.0.0.1:{free_port()}",
                "metrics_listen": f"127.0.0.1:{free_port()}",
            },
            "envoy": {
                "listen": f"127.0.0.1:{free_port()}",
                "admin": f"127.0.0.1:{free_port()}",
                "stats_listen": f"127.0.0.1:{free_port()}",
            },
        }
        (tmp_path / "b").mkdir()
        second = Stack(tmp_path / "b", second_config)
        try:
            second.write_config()
            second.start_switchyard()  # same backends as the first pair
            second.start_envoy()
            sessions = [f"pair-{i}" for i in range(400)]
            for prompt in ("symptom: nausea", "invoice missing"):
                assert backends_by_session(first, sessions, prompt) == backends_by_session(
                    second, sessions, prompt
                )
        finally:
            second.close()
