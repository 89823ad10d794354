"""The response cache on data/cache_pairs: wrong answers served and good rewordings served.

Each pair goes through the cache's own request path (extproc.cache.service) with the real
encoder and the route's defaults: the cached question is asked (a miss), its answer
filled, then the other question is asked under the same tenant; a hit serves the cached
answer. A pair marked `same: false` that hits is a wrong answer served; a `same: true`
pair that hits is a good rewording served.

    python bench/cache_pairs.py [--set dev|heldout] [--min-similarity X ...]

With several --min-similarity values it prints one summary line per value (pick the
default on dev only; held out is for measuring).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from extproc.cache.service import ResponseCache
from extproc.config import CacheConfig, parse_config
from extproc.request.chat import parse_chat

REPO = Path(__file__).resolve().parents[1]
SETS = REPO / "data" / "cache_pairs"
ANSWER = json.dumps(
    {
        "id": "chatcmpl-cached",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()


@dataclass(frozen=True)
class Pair:
    category: str
    lang: str
    same: bool
    cached: str
    asked: str


def load(name: str) -> list[Pair]:
    lines = (SETS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [Pair(**json.loads(line)) for line in lines if line.strip()]


def _config(min_similarity: float) -> Any:
    cache: dict[str, Any] = {"enabled": True, "partition_by": ["header:x-tenant-id"]}
    if min_similarity != CacheConfig().min_similarity:
        cache["min_similarity"] = min_similarity
    return parse_config(
        {
            "backends": [{"name": "b", "address": "127.0.0.1:9"}],
            "routes": [{"name": "r", "backends": [{"backend": "b"}], "cache": cache}],
            "default_route": "r",
            "classifier": {"model": str(REPO / "build" / "model")},
        },
        "bench/cache_pairs.py",
    )


async def _ask(cache: ResponseCache, tenant: str, question: str) -> Any:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": question}]})
    return await cache.lookup(
        parse_chat(body.encode()), {"x-tenant-id": tenant}, route="r", backend="b", cohort="stable"
    )


async def served(cache: ResponseCache, pairs: list[Pair]) -> list[bool]:
    """Per pair: was the asked question served the cached question's answer?"""
    results = []
    for number, pair in enumerate(pairs):
        tenant = f"pair-{number}-{time.monotonic_ns()}"
        first = await _ask(cache, tenant, pair.cached)
        pending = cache.take_pending(first.fill_token)
        assert pending is not None
        cache.offer(pending, 200, "application/json", ANSWER, len(ANSWER))
        await asyncio.sleep(0)
        await asyncio.gather(*cache._tasks)
        results.append((await _ask(cache, tenant, pair.asked)).result == "hit")
    return results


def _rate(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "-"


def table(pairs: list[Pair], hits: list[bool]) -> str:
    by: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for pair, hit in zip(pairs, hits, strict=True):
        for key in ((pair.category, pair.lang), (pair.category, "all")):
            by[key][0] += hit
            by[key][1] += 1
    lines = [
        "| category | kind | en | fr | all |",
        "|---|---|---|---|---|",
    ]
    for same, kind in ((False, "wrong answers served"), (True, "rewordings served")):
        categories = sorted({p.category for p in pairs if p.same == same})
        for category in categories:
            cells = [_rate(*by[(category, lang)]) for lang in ("en", "fr", "all")]
            lines.append(f"| {category} | {kind} | " + " | ".join(cells) + " |")
        for lang in ("en", "fr", "all"):
            chosen = [
                hit
                for p, hit in zip(pairs, hits, strict=True)
                if p.same == same and lang in (p.lang, "all")
            ]
            by[("total", lang)] = [sum(chosen), len(chosen)]
        cells = [_rate(*by[("total", lang)]) for lang in ("en", "fr", "all")]
        lines.append(f"| **all** | **{kind}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="dev", choices=("dev", "heldout"))
    parser.add_argument("--min-similarity", type=float, nargs="*", default=None)
    parser.add_argument("--show", action="store_true", help="print every pair served wrongly")
    args = parser.parse_args(argv)
    pairs = load(args.set)
    thresholds = args.min_similarity or [CacheConfig().min_similarity]
    for threshold in thresholds:
        cache = ResponseCache(CollectorRegistry())
        cache.configure(_config(threshold))
        started = time.perf_counter()
        hits = asyncio.run(served(cache, pairs))
        elapsed = time.perf_counter() - started
        wrong = sum(hit for p, hit in zip(pairs, hits, strict=True) if not p.same)
        good = sum(hit for p, hit in zip(pairs, hits, strict=True) if p.same)
        n_wrong = sum(not p.same for p in pairs)
        n_good = sum(p.same for p in pairs)
        print(
            f"set {args.set}, min_similarity {threshold}: wrong answers served "
            f"{_rate(wrong, n_wrong)}, good rewordings served {_rate(good, n_good)} "
            f"({len(pairs)} pairs, {elapsed:.1f} s)"
        )
        if len(thresholds) == 1:
            print(table(pairs, hits))
        if args.show:
            for pair, hit in zip(pairs, hits, strict=True):
                if hit != pair.same:
                    verdict = "SERVED" if hit else "missed"
                    where = f"{pair.category}/{pair.lang}"
                    print(f"  {verdict} [{where}] {pair.cached!r} -> {pair.asked!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
