"""Treated against control: the difference of two proportions and its 95% confidence interval.

Newcombe's hybrid score interval (his method 10, "Interval estimation for the difference between
independent proportions", Statistics in Medicine 17, 1998), built from one Wilson score interval
per group. Hand-written (a few lines, no dependency): unlike the plain Wald interval it stays
inside -1..1 and keeps its coverage for small groups and shares near 0 or 1, which is what a
playbook's first control groups look like. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The two-sided 95% normal quantile.
Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Difference:
    """Share treated minus share control, with its 95% interval (all as fractions)."""

    estimate: float
    low: float
    high: float


def wilson(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of successes/total (0..1 when there is nothing to go on)."""
    if total <= 0:
        return 0.0, 1.0
    share = successes / total
    scale = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / scale
    half = z / scale * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    # At 0 and at all, the bound is exactly 0 or 1 (rounding would leave it a hair inside).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def difference(
    treated_successes: int, treated: int, control_successes: int, control: int
) -> Difference:
    """Newcombe's hybrid score interval for p_treated - p_control (both groups non-empty)."""
    if treated <= 0 or control <= 0:
        msg = f"both groups need accounts, got {treated} treated and {control} control"
        raise ValueError(msg)
    p1, p2 = treated_successes / treated, control_successes / control
    low1, high1 = wilson(treated_successes, treated)
    low2, high2 = wilson(control_successes, control)
    estimate = p1 - p2
    return Difference(
        estimate,
        estimate - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
        estimate + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2),
    )
