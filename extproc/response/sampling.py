"""Which responses Envoy shows switchyard: the per-request choice behind envoy.observe_sample.

Observing a response costs a second gRPC stream per request, about as much CPU as routing
it. With envoy.observe_sample below 1, Envoy's stable routes leave the observe filter off
unless the request carries the OBSERVE header (extproc.envoy_config renders a route variant
per stable route), and switchyard sets that header when this module says so. Canary routes
always observe. A feature that needs a response's body (a cache fill, say) passes
`needs_body=True`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from extproc import headers as h
from extproc.config import EnvoyConfig


def sampling(envoy: EnvoyConfig) -> bool:
    """Whether stable routes observe only the requests marked with the OBSERVE header."""
    return envoy.observe != "off" and envoy.observe_sample < 1


def observe_response(
    envoy: EnvoyConfig,
    cohort: str,
    *,
    needs_body: bool = False,
    draw: Callable[[], float] = random.random,
) -> bool:
    """Every canary response (the analysis), every response a feature needs the body of,
    and envoy.observe_sample of the others."""
    if cohort == h.CANARY or needs_body:
        return True
    return draw() < envoy.observe_sample


def weight(envoy: EnvoyConfig, cohort: str) -> float:
    """How many responses one observed response of `cohort` stands for."""
    if cohort == h.CANARY or not sampling(envoy):
        return 1.0
    return 1.0 / envoy.observe_sample
