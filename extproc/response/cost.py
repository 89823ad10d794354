"""What an answer cost: its tokens at its backend's price (backends[].price, per million)."""

from __future__ import annotations

from extproc.config import Config, PriceConfig
from extproc.response.reader import Usage


def price_of(config: Config | None, backend: str) -> PriceConfig | None:
    if config is None:
        return None
    return next((b.price for b in config.backends if b.name == backend and b.price), None)


def cost(price: PriceConfig | None, usage: Usage) -> float:
    """0 for a backend without a price."""
    if price is None:
        return 0.0
    return (
        usage.prompt_tokens * price.prompt_per_1m
        + usage.completion_tokens * price.completion_per_1m
    ) / 1e6
