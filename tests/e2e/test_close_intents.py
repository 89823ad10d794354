"""Close English intents through a real Envoy: forty banking intents, where MiniLM reads the
examples better than USE and so gives English prompts the first opinion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.stack import REPO, Stack, make_config, running_stack

pytestmark = pytest.mark.e2e

BANK40 = yaml.safe_load((REPO / "data/eval/sets/bank40.yaml").read_text(encoding="utf-8"))
ROUTES = [
    {"name": "cards", "match": {"label": ["card_not_working"]}, "backends": [{"backend": "cards"}]},
    {
        "name": "contactless",
        "match": {"label": ["contactless_not_working"]},
        "backends": [{"backend": "contactless"}],
    },
    {"name": "accounts", "match": {"label": ["age_limit"]}, "backends": [{"backend": "accounts"}]},
    {"name": "general", "backends": [{"backend": "cheap"}]},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = make_config(
        ["cards", "contactless", "accounts", "cheap"],
        ROUTES,
        "general",
        labels=BANK40["labels"],
        classifier={},  # the default encoder, thresholds calibrated from the examples
    )
    with running_stack(tmp_path_factory.mktemp("close-intents"), config) as stack:
        yield stack


def test_minilm_gives_english_prompts_the_first_opinion(stack: Stack) -> None:
    assert "prompts (en): the second-opinion encoder gives the first opinion" in stack.log(
        "switchyard"
    )


@pytest.mark.parametrize(
    ("prompt", "backend"),
    [
        # Real users' prompts (BANKING77 test split) that USE, first, sent elsewhere
        # (unrecognised_card_payment, card_activation, the fallback).
        ("I cannot use my card.", "cards"),
        ("How do I get the contactless feature to work for my card?", "contactless"),
        ("How do I go about setting up an account for my daughter?", "accounts"),
        ("Who won the football world cup in 1998?", "cheap"),  # out of scope
    ],
)
def test_close_intents_land_on_their_routes(stack: Stack, prompt: str, backend: str) -> None:
    reply = stack.client.chat(prompt)
    assert reply.status == 200, reply.body
    assert reply.backend == backend, (prompt, reply.headers)
