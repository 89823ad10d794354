"""Where one request's classification time goes: tokenizer, ONNX run, scoring and the
decision, for the encoder and thread count the sidecar uses
(docs/research/2026-classifier-log.md, issue #12).

    .venv/bin/python bench/classify_path.py [--encoder use] [--threads 1,2] [--rounds 5]

The classifier is built from the example config's labels (switchyard.yaml), as in
`make bench`'s semantic scenario, and every call gets a new ~32-token prompt of the bench's
words (no cache can answer it). Parts run interleaved, one round after another, so a busy
machine slows them alike; the table gives the median over rounds of each round's p50.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import WORDS
from classifier.labels import Label, LabelClassifier, load_classifier
from classifier.onnx_io import run_model

REPO = Path(__file__).resolve().parents[1]
PROMPT_WORDS = 30


def _labels() -> list[Label]:
    config = yaml.safe_load((REPO / "switchyard.yaml").read_text(encoding="utf-8"))
    return [Label(item["name"], tuple(item["examples"])) for item in config["labels"]]


def _p50_ms(call: Callable[[str], object], prompts: list[str]) -> float:
    samples = []
    for prompt in prompts:
        started = time.perf_counter()
        call(prompt)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(encoder: str, threads: int, rounds: int, per_round: int) -> dict[str, float]:
    clf = load_classifier(
        REPO / "build" / "model",
        _labels(),
        threshold=None,
        fallback="other",
        max_tokens=128,
        threads=threads,
        encoder=encoder,
    )
    assert isinstance(clf, LabelClassifier)
    member = clf._members[0]  # the benchmark looks inside on purpose
    enc = member.encoder
    rng = random.Random(threads)

    def prompts() -> list[str]:
        return [" ".join(rng.choice(WORDS) for _ in range(PROMPT_WORDS)) for _ in range(per_round)]

    def onnx_only(prompt: str) -> object:
        ids, mask = enc.tokenizer.batch([prompt])
        return run_model(enc._session, enc._inputs, enc._output_name, ids, mask, "bench")

    parts: dict[str, Callable[[str], object]] = {
        "tokenize": lambda p: enc.tokenizer.batch([p]),
        "tokenize + ONNX run": onnx_only,
        "encode (+ L2 norm)": lambda p: enc.encode([p]),
        "classify_conversations (all of it)": lambda p: clf.classify_conversations([[p]]),
    }
    for prompt in prompts()[:30]:  # warm-up
        clf.classify_conversations([[prompt]])
    results: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(rounds):
        for name, call in parts.items():
            results[name].append(_p50_ms(call, prompts()))
    tokens = statistics.median(len(enc.tokenizer.token_ids(p)) for p in prompts())
    return {"tokens": tokens} | {name: statistics.median(v) for name, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="use")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    columns = " | ".join(f"{t} thread(s), p50 ms" for t in threads)
    print(f"| part ({args.encoder}) | {columns} |")
    print("|---|" + "---|" * len(threads))
    rows = [measure(args.encoder, t, args.rounds, args.per_round) for t in threads]
    for name in rows[0]:
        print(f"| {name} | " + " | ".join(f"{row[name]:.3f}" for row in rows) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
