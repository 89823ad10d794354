"""Who may change state through switchyard's HTTP API (extproc.http_api.authorize)."""

from __future__ import annotations

import pytest

from extproc.http_api import Denied, authorize

TOKEN = "s3cret-token"


@pytest.mark.parametrize("peer", ["127.0.0.1", "10.2.3.4", "::1"])
def test_the_right_bearer_token_is_accepted_from_anywhere(peer: str) -> None:
    assert authorize(f"Bearer {TOKEN}", peer, TOKEN) is None
    assert authorize(f"bearer {TOKEN}", peer, TOKEN) is None


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN],
)
def test_missing_or_wrong_tokens_get_one_and_the_same_answer(header: str | None) -> None:
    # Loopback too: with a token configured, being local is not enough.
    for peer in ("127.0.0.1", "10.2.3.4"):
        denied = authorize(header, peer, TOKEN)
        assert denied == Denied(401, "expected the header Authorization: Bearer <admin token>")


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_loopback_clients_may(peer: str) -> None:
    assert authorize(None, peer, None) is None
    assert authorize("Bearer anything", peer, None) is None


@pytest.mark.parametrize("peer", ["10.2.3.4", "192.0.2.2", "::ffff:10.0.0.1", "fd00::2", ""])
def test_without_a_token_other_clients_may_not(peer: str) -> None:
    denied = authorize("Bearer anything", peer, None)
    assert denied is not None and denied.status == 403
    assert "loopback" in denied.message
