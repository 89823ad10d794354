"""Simulates the canary analysis (extproc.rollout.analysis): false-alarm rate and detection time.

Traffic is generated second by second (Poisson-free: a fixed rate, each request
independently an error with the cohort's error rate, latency lognormal around
the cohort's median; each answer independently a refusal with the cohort's refusal
rate and, for a share of answers, scored from a normal around the cohort's mean
score clipped to 0..1, the signal arriving at once) into per-second summaries;
every `interval_s` the same analyze() the server runs looks at the last `window_s`
seconds of them, exactly as extproc.rollout.controller does.

    .venv/bin/python bench/canary_sim.py            # prints a markdown table
    .venv/bin/python bench/canary_sim.py --quality  # the quality checks' cases
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, replace

from extproc.config import AnalysisConfig
from extproc.rollout.analysis import analyze
from extproc.rollout.outcome import Outcome
from extproc.rollout.window import Summary


@dataclass(frozen=True)
class Cohort:
    error_rate: float
    median_ms: float
    sigma: float = 0.3
    refusal_rate: float = 0.0
    score_mean: float | None = None
    """None: no scores at all."""
    scored_share: float = 0.2
    """Share of answers someone scores (POST /feedback or a judge's header)."""
    score_sd: float = 0.2


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
    counted: str = "",
    stable_sample: float = 1.0,
) -> float | None:
    """Seconds from the change to the first DEGRADED verdict (negative: before it), or None.

    counted: only verdicts on metrics with this prefix count ("quality." for the quality
    checks alone)."""
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
            bucket = buckets[cohort_name].setdefault(int(t), Summary())
            bucket.add(error, latency)
            if not error:
                if cohort.refusal_rate and rng.random() < cohort.refusal_rate:
                    bucket.add_flag("refusal")
                if cohort.score_mean is not None and rng.random() < cohort.scored_share:
                    score = rng.gauss(cohort.score_mean, cohort.score_sd)
                    bucket.add_score(min(1.0, max(0.0, score)))
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
            if verdict.status is Outcome.DEGRADED and verdict.metric.startswith(counted):
                return t - change_at
    return None


def detection(
    cfg: AnalysisConfig,
    rate: float,
    share: float,
    stable: Cohort,
    after: Cohort,
    rng: random.Random,
    counted: str = "",
    stable_sample: float = 1.0,
) -> str:
    times = [
        run(cfg, rate, share, stable, stable, after, 120, 1200, rng, counted, stable_sample)
        for _ in range(10)
    ]
    found = sorted(t for t in times if t is not None)
    if not found:
        return "not detected within 1080 s (10/10 runs)"
    median = found[len(found) // 2]
    return (
        f"detected {len(found)}/10, median {median:.1f} s, max {found[-1]:.1f} s after the change"
    )


def false_alarms(
    cfg: AnalysisConfig,
    rate: float,
    share: float,
    base: Cohort,
    seconds: float,
    rng: random.Random,
    counted: str = "",
    stable_sample: float = 1.0,
) -> int:
    alarms, elapsed = 0, 0.0
    while elapsed < seconds:
        hit = run(
            cfg, rate, share, base, base, base, 0, seconds - elapsed, rng, counted, stable_sample
        )
        if hit is None:
            break
        alarms += 1
        elapsed += hit + cfg.window_s  # after a (false) rollback, a fresh window
    return alarms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s on the route")
    parser.add_argument("--share", type=float, default=0.05, help="canary share")
    parser.add_argument("--hours", type=float, default=1.0, help="A/A time simulated per case")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quality", action="store_true", help="the quality checks' cases")
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
    if args.quality:
        quality_cases(cfg, args.rate, args.share, aa_seconds, rng)
        return
    for error_rate, median in ((0.001, 800), (0.01, 800), (0.05, 800)):
        alarms = false_alarms(
            cfg,
            args.rate,
            args.share,
            Cohort(error_rate, median),
            aa_seconds,
            rng,
            stable_sample=sample,
        )
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
        print(
            f"| {name} | "
            f"{detection(cfg, args.rate, args.share, stable, after, rng, stable_sample=sample)} |"
        )


QUALITY = "quality."
"""The quality cases count only the quality checks' verdicts: a latency or error false
alarm is the other table's business."""


def quality_cases(
    cfg: AnalysisConfig, rate: float, share: float, aa_seconds: float, rng: random.Random
) -> None:
    hours = aa_seconds / 3600
    for refusals, score in ((0.02, 0.7), (0.10, 0.5)):
        base = Cohort(0.01, 800, refusal_rate=refusals, score_mean=score)
        alarms = false_alarms(cfg, rate, share, base, aa_seconds, rng, QUALITY)
        print(
            f"| A/A, {refusals:.0%} refusals, mean score {score} (20 % scored) | "
            f"{alarms} false rollback(s) in {hours:g} h |"
        )
    stable = Cohort(0.01, 800, refusal_rate=0.02, score_mean=0.7)
    cases = [
        ("refusals 2 % -> 100 %", replace(stable, refusal_rate=1.0)),
        ("refusals 2 % -> 10 %", replace(stable, refusal_rate=0.10)),
        ("refusals 2 % -> 4 %", replace(stable, refusal_rate=0.04)),
        ("mean score 0.7 -> 0.3", replace(stable, score_mean=0.3)),
        ("mean score 0.7 -> 0.5", replace(stable, score_mean=0.5)),
        ("mean score 0.7 -> 0.65 (the margin)", replace(stable, score_mean=0.65)),
        ("mean score 0.7 -> 0.3, 2 % scored", replace(stable, score_mean=0.3, scored_share=0.02)),
    ]
    for name, after in cases:
        print(f"| {name} | {detection(cfg, rate, share, stable, after, rng, QUALITY)} |")


if __name__ == "__main__":
    main()
