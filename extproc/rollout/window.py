"""Observations of one cohort, summed so that summaries merge by addition.

The canary analysis needs, per cohort: requests, errors, and for successful answers
the count, sum and sum of squares of log latency (the Welch test on log latency is
exact from these) plus medians (a histogram on fixed log-spaced bounds, 5 % wide).
Because every part adds up, a window is the sum of per-second buckets, and the
fleet's window is the sum of every replica's buckets: the Redis store keeps exactly
these fields. Answer-quality signals (extproc.rollout.quality) add up the same way:
scores as count, sum and sum of squares, flags as counts, filed under the second the
request was answered in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BIN_RATIO = 1.05
"""Width of a latency bin: a median read from the histogram is within 2.5 % of the truth."""
BIN_FLOOR_S = 0.0005
BIN_COUNT = 320
"""0.5 ms to ~3 hours: every latency an HTTP request can have."""
_LOG_RATIO = math.log(BIN_RATIO)


def latency_bin(latency: float) -> int:
    if latency <= BIN_FLOOR_S:
        return 0
    return min(BIN_COUNT - 1, int(math.log(latency / BIN_FLOOR_S) / _LOG_RATIO))


def bin_midpoint(index: int) -> float:
    return BIN_FLOOR_S * BIN_RATIO ** (index + 0.5)


@dataclass
class Summary:
    requests: int = 0
    errors: int = 0
    answered: int = 0
    """Successful answers: the latency statistics are over these only (a fast error is
    not a fast answer)."""
    log_sum: float = 0.0
    log_sq_sum: float = 0.0
    bins: dict[int, int] = field(default_factory=dict)
    scored: int = 0
    score_sum: float = 0.0
    score_sq_sum: float = 0.0
    flags: dict[str, int] = field(default_factory=dict)
    """Quality flags by kind (unsafe, refusal, wrong, empty, truncated)."""

    def add_score(self, score: float) -> None:
        self.scored += 1
        self.score_sum += score
        self.score_sq_sum += score * score

    def add_flag(self, flag: str) -> None:
        self.flags[flag] = self.flags.get(flag, 0) + 1

    @property
    def score_mean(self) -> float:
        return self.score_sum / self.scored if self.scored else 0.0

    @property
    def score_variance(self) -> float:
        if self.scored < 2:
            return 0.0
        spread = self.score_sq_sum - self.score_sum * self.score_sum / self.scored
        return max(spread, 0.0) / (self.scored - 1)

    def add(self, error: bool, latency: float) -> None:
        self.requests += 1
        if error:
            self.errors += 1
            return
        log_latency = math.log(max(latency, 1e-6))
        self.answered += 1
        self.log_sum += log_latency
        self.log_sq_sum += log_latency * log_latency
        index = latency_bin(latency)
        self.bins[index] = self.bins.get(index, 0) + 1

    def merge(self, other: Summary) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.answered += other.answered
        self.log_sum += other.log_sum
        self.log_sq_sum += other.log_sq_sum
        for index, count in other.bins.items():
            self.bins[index] = self.bins.get(index, 0) + count
        self.scored += other.scored
        self.score_sum += other.score_sum
        self.score_sq_sum += other.score_sq_sum
        for flag, count in other.flags.items():
            self.flags[flag] = self.flags.get(flag, 0) + count

    @property
    def log_mean(self) -> float:
        return self.log_sum / self.answered if self.answered else 0.0

    @property
    def log_variance(self) -> float:
        if self.answered < 2:
            return 0.0
        spread = self.log_sq_sum - self.log_sum * self.log_sum / self.answered
        return max(spread, 0.0) / (self.answered - 1)

    def median_latency(self) -> float | None:
        """Seconds, from the histogram; None without successful answers."""
        if not self.answered:
            return None
        middle = (self.answered - 1) / 2
        seen = 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen > middle:
                return bin_midpoint(index)
        return bin_midpoint(max(self.bins))

    # -- as stored in a Redis hash ---------------------------------------------------

    def fields(self) -> dict[str, int | float]:
        """Increments for a Redis hash: n, e, a, ls, lss, one b<index> per bin, and the
        quality signals: qn, qs, qss (scores) and one f_<flag> per flag kind."""
        out: dict[str, int | float] = {
            "n": self.requests,
            "e": self.errors,
            "a": self.answered,
            "ls": self.log_sum,
            "lss": self.log_sq_sum,
        }
        out.update({f"b{index}": count for index, count in self.bins.items()})
        if self.scored:
            out.update({"qn": self.scored, "qs": self.score_sum, "qss": self.score_sq_sum})
        out.update({f"f_{flag}": count for flag, count in self.flags.items()})
        return out

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> Summary:
        summary = cls(
            requests=int(raw.get("n", 0)),
            errors=int(raw.get("e", 0)),
            answered=int(raw.get("a", 0)),
            log_sum=float(raw.get("ls", 0.0)),
            log_sq_sum=float(raw.get("lss", 0.0)),
            scored=int(raw.get("qn", 0)),
            score_sum=float(raw.get("qs", 0.0)),
            score_sq_sum=float(raw.get("qss", 0.0)),
        )
        for key, value in raw.items():
            if key.startswith("b") and key[1:].isdigit():
                summary.bins[int(key[1:])] = int(value)
            elif key.startswith("f_"):
                summary.flags[key[2:]] = int(value)
        return summary


def summarize(observations: list[tuple[bool, float]]) -> Summary:
    """A summary of (error, latency) pairs: for simulations and tests."""
    summary = Summary()
    for error, latency in observations:
        summary.add(error, latency)
    return summary
