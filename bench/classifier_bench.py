"""Micro-benchmark of the encoder: tokenize + infer latency, fp32 vs int8, batch 1 vs 8.

    .venv/bin/python bench/classifier_bench.py [--model-dir build/model] [--runs 300]
        [--threads 1]

Prints a markdown table of p50/p99 per call (batch-8 rows run a third of the runs). The
defaults match the sidecar: one intra-op thread, one prompt per call. Prompts are built to
an exact token count, so the rows are comparable across tokenizers. Builds the model first
when the directory is missing or stale.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.build import build_model, is_up_to_date
from classifier.encoder import Encoder

TOKEN_COUNTS = (16, 32, 64, 256)
BATCHES = (1, 8)
FILES = {"fp32": "model-fp32.onnx", "int8": "model.onnx"}
WORDS = [
    "patient",
    "reports",
    "mild",
    "fever",
    "after",
    "taking",
    "the",
    "prescribed",
    "antibiotic",
    "twice",
    "daily",
]


def prompt_of(encoder: Encoder, n_tokens: int, seed: int) -> str:
    """A text that tokenizes to exactly ``n_tokens`` (with [CLS] and [SEP])."""
    words: list[str] = []
    i = seed
    while len(encoder.tokenizer.token_ids(" ".join(words))) < n_tokens:
        words.append(WORDS[i % len(WORDS)])
        i += 1
    while len(encoder.tokenizer.token_ids(" ".join(words))) > n_tokens:
        words.pop()
    return " ".join(words)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(encoder: Encoder, texts: list[str], runs: int) -> tuple[float, float]:
    for _ in range(3):  # warm-up: first runs allocate arenas
        encoder.encode(texts, batch_size=len(texts))
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        encoder.encode(texts, batch_size=len(texts))
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), percentile(samples, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("build/model"))
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not is_up_to_date(args.model_dir):
        build_model(args.model_dir)

    print("| precision | tokens | batch | p50 ms | p99 ms | p50 ms/text |")
    print("|---|---|---|---|---|---|")
    for precision, filename in FILES.items():
        encoder = Encoder(args.model_dir, max_tokens=256, threads=args.threads, model_file=filename)
        for n_tokens in TOKEN_COUNTS:
            for batch in BATCHES:
                texts = [prompt_of(encoder, n_tokens, seed) for seed in range(batch)]
                p50, p99 = measure(encoder, texts, args.runs if batch == 1 else args.runs // 3)
                print(
                    f"| {precision} | {n_tokens} | {batch} | {p50:.2f} | {p99:.2f} "
                    f"| {p50 / batch:.2f} |"
                )


if __name__ == "__main__":
    main()
