"""The cache's hit rule on its test set with the real multilingual encoder: a semantic
hit needs cosine >= min_similarity and the guard's agreement (docs/CACHE.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from classifier.encoder import Encoder
from extproc.cache.guard import agrees
from extproc.cache.wording import canonical
from extproc.config import CacheConfig

PAIRS = yaml.safe_load(
    (Path(__file__).parents[1] / "unit" / "data" / "cache_pairs.yaml").read_text()
)
DEFAULT = CacheConfig().min_similarity


def _cosines(encoder: Encoder, pairs: list[tuple[str, str]]) -> np.ndarray:
    # The cache embeds questions as the guard reads them (extproc.cache.service._embed).
    first = encoder.encode([canonical(a) for a, _ in pairs])
    second = encoder.encode([canonical(b) for _, b in pairs])
    return np.asarray((first * second).sum(axis=1))


def test_no_false_hit_and_most_rewordings_hit(use_encoder: Encoder) -> None:
    opposite = [(a, b) for _, a, b in PAIRS["opposite"]]
    reworded = [(a, b) for a, b in PAIRS["reworded"]]
    close_opposites = _cosines(use_encoder, opposite) >= DEFAULT
    false_hits = [
        p for p, close in zip(opposite, close_opposites, strict=True) if close and agrees(*p)
    ]
    hits = [
        close and agrees(a, b)
        for (a, b), close in zip(reworded, _cosines(use_encoder, reworded) >= DEFAULT, strict=True)
    ]
    print(
        f"min_similarity {DEFAULT}: {close_opposites.sum()}/{len(opposite)} opposite pairs this "
        f"close (what similarity alone would serve), false hits {len(false_hits)}; "
        f"rewordings hit {sum(hits)}/{len(hits)}"
    )
    assert close_opposites.sum() >= 10  # the guard has real work on this set
    assert false_hits == []
    assert sum(hits) / len(hits) >= 0.8


def test_the_vocabulary_tells_spelt_words_from_typos(use_encoder: Encoder) -> None:
    words = use_encoder.tokenizer.words()
    assert {"password", "export", "expert", "payment", "compte"} <= words
    assert not {"pasword", "dowload", "invocie", "paymnet"} & words
