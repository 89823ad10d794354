"""Close intents of another domain, on real prompts: few-shot configs cut from the HWU64
test split (voice-assistant commands: alarms, calendar, email, music, lights...), the
arbitrating dev set of docs/research/2026-classifier-log.md, tenth round.

    .venv/bin/python bench/hwu64.py --csv hwu64_test.csv [--seeds 0,1,2]
        [--encoders use+minilm-when-unsure,minilm] [--cache DIR]

The CSV (columns ``text,category``: the HWU64 test split, 1,076 prompts, 64 intents of 3 to
19 prompts; Liu et al. 2019, CC-BY-4.0; the copy used here is ``data/hwu64/test.csv`` of
the sogang-isds/TOATOD repository on GitHub) is not part of this repository: pass its path
with ``--csv`` or ``SWITCHYARD_HWU64_CSV``. Per seed, four configs: k = 5 examples per label
(the intents with at least 10 prompts) and k = 10 (at least 15), each with every such
intent configured and with 6 of them out of scope. Scoring, the error split and the
embedding cache are bench/banking77.py's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.banking77 import Config, parse_arguments, read_intents, run, split, summary

CSV_ENV = "SWITCHYARD_HWU64_CSV"
OOS_INTENTS = 6
# k examples per label, and the prompts an intent needs to be configured with k (k + 5
# leaves every label at least five queries).
SHOTS = ((5, 10), (10, 15))


def configs(by_intent: dict[str, list[str]], seeds: list[int]) -> list[Config]:
    out: list[Config] = []
    for k, needed in SHOTS:
        intents = [name for name, texts in by_intent.items() if len(texts) >= needed]
        for seed in seeds:
            family = f"hwu{len(intents)}"
            out.append((f"{family} k={k} s={seed}", *split(by_intent, intents, seed, k)))
            out.append(
                (
                    f"{family}-oos{OOS_INTENTS} k={k} s={seed}",
                    *split(by_intent, intents, seed + 50, k, OOS_INTENTS),
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="dev: 0,1,2; fresh draws: 3,4,5,6")
    args, encoders, variants = parse_arguments(parser, CSV_ENV, "HWU64 test")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    results = run(configs(read_intents(args.csv), seeds), variants, after_config=encoders.save)
    print(summary(results))


if __name__ == "__main__":
    main()
