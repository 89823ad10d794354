"""Which responses Envoy shows switchyard: the per-request choice behind envoy.observe_sample.

Observing a response costs a second gRPC stream per request, about as much CPU as routing
it. With envoy.observe_sample below 1, Envoy's stable routes leave the observe filter off
unless the request carries the OBSERVE header (extproc.envoy_config renders a route variant
per stable route), and switchyard sets that header when this module says so. Canary routes
always observe. A feature that needs a response's body (a cache fill, say) passes
`needs_body=True`.

A stable request is in the sample when a hash of its x-request-id says so, not a random
draw: every replica and worker, the observing stream and POST /feedback then agree on
which requests were sampled without asking each other. The observing stream counts only
sampled responses in the A/B totals, so responses observed just for their body (a cache
fill) do not bias the estimate; feedback for a request outside the sample is answered
"unsampled" instead of "unknown".
"""

from __future__ import annotations

import random
import zlib

from extproc import headers as h
from extproc.config import EnvoyConfig

_HASH_RANGE = 2**32


def sampling(envoy: EnvoyConfig) -> bool:
    """Whether stable routes observe only the requests marked with the OBSERVE header."""
    return envoy.observe != "off" and envoy.observe_sample < 1


def in_sample(request_id: str, share: float) -> bool:
    """Whether a stable request with this x-request-id is in the observed share. An empty
    id (Envoy always sets one; a processor test may not) is drawn at random."""
    if not request_id:
        return random.random() < share
    return zlib.crc32(request_id.encode()) < share * _HASH_RANGE


def observe_response(
    envoy: EnvoyConfig, cohort: str, request_id: str, *, needs_body: bool = False
) -> bool:
    """Every canary response (the analysis), every response a feature needs the body of,
    and envoy.observe_sample of the others."""
    if cohort == h.CANARY or needs_body:
        return True
    return in_sample(request_id, envoy.observe_sample)


def weight(envoy: EnvoyConfig, cohort: str, request_id: str) -> float:
    """How many responses one observed response of `cohort` stands for in the A/B totals:
    0 for a stable response outside the sample (observed only for its body)."""
    if cohort == h.CANARY or not sampling(envoy):
        return 1.0
    if not in_sample(request_id, envoy.observe_sample):
        return 0.0
    return 1.0 / envoy.observe_sample
