"""A replayed support workload for the cache: 200 distinct questions, asked again
(half of the repeats reworded). Deterministic, so every run measures the same thing."""

from __future__ import annotations

import random

NOUNS = [
    "password", "email address", "billing address", "phone number", "profile picture",
    "username", "invoice", "credit card", "shipping address", "subscription plan",
    "delivery date", "order history", "loyalty points", "gift card", "tax receipt",
    "notification settings", "privacy settings", "language setting", "time zone",
    "display name", "team members", "API key", "support ticket", "refund request",
    "return label", "warranty", "account number", "security questions", "recovery codes",
    "saved payment methods", "wishlist", "shopping cart", "newsletter preferences",
    "bank details", "company name", "VAT number", "delivery instructions",
    "store credit", "membership card", "contract",
    "data export", "login history", "storage quota", "calendar", "backup",
    "webhook", "signature", "avatar", "booking", "voucher",
]  # fmt: skip
FRAMES = [
    ("How do I change my {}?", "How can I change my {}?"),
    ("Where can I see my {}?", "Where do I see my {}?"),
    ("Why is my {} wrong?", "Why is my {} incorrect?"),
    ("Who can access my {}?", "Who is able to access my {}?"),
]
DISTINCT = 200


def questions() -> list[tuple[str, str]]:
    """(question, a rewording of it), 200 of them."""
    pairs = [(ask.format(noun), again.format(noun)) for noun in NOUNS for ask, again in FRAMES]
    return pairs[:DISTINCT]


def workload(seed: int = 13, repeat_share: float = 0.7) -> list[tuple[int, str]]:
    """(question index, text) in the order sent: every question once, then repeats and
    rewordings (70 % of all requests), shuffled after each question's first ask."""
    rng = random.Random(seed)
    pairs = questions()
    repeats = round(len(pairs) * repeat_share / (1 - repeat_share))
    firsts = [(i, pairs[i][0]) for i in range(len(pairs))]
    again = [rng.randrange(len(pairs)) for _ in range(repeats)]
    later = [(i, pairs[i][k % 2]) for k, i in enumerate(again)]
    rng.shuffle(later)
    # A repeat comes after its question's first ask: first asks lead, repeats mix in.
    order: list[tuple[int, str]] = []
    seen: set[int] = set()
    pending = list(later)
    for first in firsts:
        order.append(first)
        seen.add(first[0])
        while pending and pending[0][0] in seen and rng.random() < 0.6:
            order.append(pending.pop(0))
    rest = [item for item in pending]
    return order + rest
