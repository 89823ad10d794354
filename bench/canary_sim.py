"""Simulates the canary analysis (extproc.rollout.analysis): false-alarm rate and detection time.

Traffic is generated second by second (Poisson-free: a fixed rate, each request
independently an error with the cohort's error rate, latency lognormal around
the cohort's median) into per-second summaries; every `interval_s` the same
analyze() the server runs looks at the last `window_s` seconds of them, exactly as
extproc.app does.

    .venv/bin/python bench/canary_sim.py            # prints a markdown table
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass

from extproc.config import AnalysisConfig
from extproc.rollout.analysis import Status, analyze
from extproc.rollout.window import Summary


@dataclass(frozen=True)
class Cohort:
    error_rate: float
    median_ms: float
    sigma: float = 0.3


def run(
    cfg: AnalysisConfig,
    rate: float,
    canary_share: float,
    stable: Cohort,
    before: Cohort,
    after: Cohort,
    change_at: float,
    duration: float,
    rng: random.Random,
    stable_sample: float = 1.0,
) -> float | None:
    """Seconds from the change to the first DEGRADED verdict (negative: before it), or None."""
    buckets: dict[str, dict[int, Summary]] = {"canary": {}, "stable": {}}
    t = 0.0
    step = 1.0 / rate
    next_check = cfg.interval_s
    while t < duration:
        cohort_name = "canary" if rng.random() < canary_share else "stable"
        cohort = stable if cohort_name == "stable" else (before if t < change_at else after)
        latency = cohort.median_ms / 1000 * rng.lognormvariate(0, cohort.sigma)
        error = rng.random() < cohort.error_rate
        # envoy.observe_sample: only that share of stable's responses reaches the analysis.
        if cohort_name == "canary" or rng.random() < stable_sample:
            buckets[cohort_name].setdefault(int(t), Summary()).add(error, latency)
        t += step
        if t >= next_check:
            next_check += cfg.interval_s
            first = math.ceil(t - cfg.window_s)
            window = {}
            for name, per_second in buckets.items():
                for second in [second for second in per_second if second < first]:
                    del per_second[second]
                window[name] = Summary()
                for summary in per_second.values():
                    window[name].merge(summary)
            verdict = analyze(window["canary"], window["stable"], cfg)
            if verdict.status is Status.DEGRADED:
                return t - change_at
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s on the route")
    parser.add_argument("--share", type=float, default=0.05, help="canary share")
    parser.add_argument("--hours", type=float, default=1.0, help="A/A time simulated per case")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--stable-sample", type=float, default=1.0, help="envoy.observe_sample (stable's share)"
    )
    args = parser.parse_args()
    cfg = AnalysisConfig()
    rng = random.Random(args.seed)
    print(
        f"defaults: {cfg.model_dump()}; {args.rate:g} req/s, canary {args.share:.0%}, "
        f"stable observed {args.stable_sample:.0%}\n"
    )
    sample = args.stable_sample
    print("| case | result |")
    print("|---|---|")
    aa_seconds = args.hours * 3600
    for error_rate, median in ((0.001, 800), (0.01, 800), (0.05, 800)):
        base = Cohort(error_rate, median)
        alarms, elapsed = 0, 0.0
        while elapsed < aa_seconds:
            hit = run(
                cfg, args.rate, args.share, base, base, base, 0, aa_seconds - elapsed, rng, sample
            )
            if hit is None:
                break
            alarms += 1
            elapsed += hit + cfg.window_s  # after a (false) rollback, a fresh window
        print(
            f"| A/A, {error_rate:.1%} errors, {median} ms median | {alarms} false rollback(s) "
            f"in {args.hours:g} h |"
        )
    stable = Cohort(0.01, 800)
    cases = [
        ("canary fails every request", Cohort(1.0, 800)),
        ("errors 1 % -> 10 %", Cohort(0.10, 800)),
        ("errors 1 % -> 3 %", Cohort(0.03, 800)),
        ("latency x2", Cohort(0.01, 1600)),
        ("latency x1.3", Cohort(0.01, 1040)),
    ]
    for name, after in cases:
        times = [
            run(cfg, args.rate, args.share, stable, stable, after, 120, 1200, rng, sample)
            for _ in range(10)
        ]
        found = sorted(t for t in times if t is not None)
        if found:
            median = found[len(found) // 2]
            print(
                f"| {name} | detected {len(found)}/10, median {median:.1f} s, "
                f"max {found[-1]:.1f} s after the change |"
            )
        else:
            print(f"| {name} | not detected within 1080 s (10/10 runs) |")


if __name__ == "__main__":
    main()
