"""Routes that combine conditions, through a real Envoy: French support questions go to
French-speaking staff, the others to the support desk (issue #30)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.stack import REPO, Stack, make_config, running_stack

pytestmark = pytest.mark.e2e

EXAMPLE = yaml.safe_load((REPO / "switchyard.yaml").read_text())
CLASSIFIER = {k: v for k, v in EXAMPLE["classifier"].items() if k != "model"}

ROUTES = [
    # Before the plain support route: first match wins.
    {
        "name": "support-fr",
        "match": {"label": "support", "language": "fr"},
        "backends": [{"backend": "helpdesk_fr"}],
    },
    {"name": "support", "match": {"label": "support"}, "backends": [{"backend": "helpdesk"}]},
    {
        "name": "urgent-or-legal",
        "match": {"any_of": [{"keywords": ["urgent"]}, {"label": "legal"}]},
        "backends": [{"backend": "priority"}],
    },
    {"name": "general", "backends": [{"backend": "cheap"}]},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = make_config(
        ["helpdesk_fr", "helpdesk", "priority", "cheap"],
        ROUTES,
        "general",
        labels=EXAMPLE["labels"],
        classifier=CLASSIFIER,
    )
    with running_stack(tmp_path_factory.mktemp("language"), config) as stack:
        yield stack


@pytest.mark.parametrize(
    ("messages", "backend"),
    [
        (
            ["Je n'arrive plus à me connecter à mon compte, le mot de passe est refusé"],
            "helpdesk_fr",
        ),
        (["On m'a facturé deux fois mon abonnement ce mois-ci"], "helpdesk_fr"),
        (["Comment est-ce que je résilie mon abonnement ?"], "helpdesk_fr"),
        # "ok merci" gives no language evidence of its own; the conversation is French.
        (
            ["Je ne reçois pas l'e-mail de réinitialisation du mot de passe", "ok merci"],
            "helpdesk_fr",
        ),
        (["I can't log in to my account, my password is rejected"], "helpdesk"),
        (["I was charged twice for my subscription this month"], "helpdesk"),
        (["How do I cancel my subscription?"], "helpdesk"),
        # French but not support: the language alone does not take it.
        (["J'ai de la fièvre depuis hier, que dois-je faire ?"], "cheap"),
        (["Mon propriétaire refuse de me rendre ma caution, que puis-je faire ?"], "priority"),
        (["This is urgent: write me a haiku about autumn"], "priority"),
    ],
)
def test_french_support_reaches_its_own_route_and_english_support_the_other(
    stack: Stack, messages: list[str], backend: str
) -> None:
    reply = stack.client.chat(*messages)
    assert reply.status == 200, reply.body
    assert reply.backend == backend, (messages, reply.headers)
