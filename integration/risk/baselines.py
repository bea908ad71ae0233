"""An account's own normal, computed from its daily history: pure arithmetic, no I/O.

- Weekday-aware: a Monday is compared with the account's usual Monday, so a product used on
  weekdays does not "drop" every weekend.
- Anchored before a decline: the normal is the highest 4-week level among the blocks of the last
  `lookback_weeks` before the window, so a decline that began weeks ago is still measured against
  the level before it, not against its own first weeks.
- Seasonal: with a year of history, the same weeks last year tell whether a dip (or a busy
  spell) is the season; `same_weeks_last_year` compares with those weeks directly.
- When a fall began (`onset`), and how weekly totals trend (`weekly_totals`, `slope_t`), for
  flags that say "since" and "about N% a week".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

WEEK = 7
YEAR_DAYS = 364  # 52 weeks: the same weekdays a year earlier


@dataclass(frozen=True, slots=True)
class Comparison:
    """The window's actual total against what the account's normal predicts for those days."""

    window_days: int
    actual: float
    expected: float
    normal_weeks: int
    profile: tuple[float, ...] = ()
    seasonal: bool = False

    @property
    def change_pct(self) -> float:
        return (self.actual - self.expected) / self.expected * 100 if self.expected else 0.0

    @property
    def per_day(self) -> tuple[float, float]:
        return self.actual / self.window_days, self.expected / self.window_days


def weekday_profile(values: Sequence[int], first_day: date) -> list[float]:
    """Mean value per weekday (Monday = 0) over `values` starting on `first_day`."""
    first = first_day.weekday()
    profile = [0.0] * WEEK
    for offset in range(min(WEEK, len(values))):
        same_weekday = values[offset::WEEK]  # slicing: the evaluation of 100k accounts is hot
        profile[(first + offset) % WEEK] = sum(same_weekday) / len(same_weekday)
    return profile


def expected_total(profile: Sequence[float], first_day: date, days: int) -> float:
    first = first_day.weekday()
    weeks, rest = divmod(days, WEEK)
    return weeks * sum(profile) + sum(profile[(first + n) % WEEK] for n in range(rest))


def normal_profile(
    values: Sequence[int],
    last_day: date,
    window: int,
    block_weeks: int,
    lookback_weeks: int,
    history_days: int,
) -> tuple[list[float], int] | None:
    """The weekday profile of the highest-level `block_weeks` block ending within
    `lookback_weeks` before the window; None when not even one full block has history."""
    block = block_weeks * WEEK
    best: tuple[float, list[float]] | None = None
    for shift_weeks in range(max(1, lookback_weeks - block_weeks + 1)):
        end = len(values) - window - shift_weeks * WEEK  # exclusive index of the block's end
        start = end - block
        if start < 0 or start < len(values) - history_days:
            break
        first = last_day - timedelta(days=len(values) - 1 - start)
        profile = weekday_profile(values[start:end], first)
        level = sum(profile)
        if best is None or level > best[0]:
            best = (level, profile)
    return (best[1], block_weeks) if best else None


def compare(
    values: Sequence[int],
    last_day: date,
    window: int,
    block_weeks: int,
    lookback_weeks: int,
    history_days: int,
) -> Comparison | None:
    """This window against the normal before it; None without enough history."""
    found = normal_profile(values, last_day, window, block_weeks, lookback_weeks, history_days)
    if found is None:
        return None
    profile, weeks = found
    window_first = last_day - timedelta(days=window - 1)
    actual = float(sum(values[len(values) - window :]))
    return Comparison(
        window, actual, expected_total(profile, window_first, window), weeks, tuple(profile)
    )


def year_over_year(
    values: Sequence[int],
    last_day: date,
    window: int,
    block_weeks: int,
    lookback_weeks: int,
    history_days: int,
) -> Comparison | None:
    """The same comparison a year earlier (same weekdays), when the history reaches that far."""
    if history_days < YEAR_DAYS + window + block_weeks * WEEK or len(values) <= YEAR_DAYS:
        return None
    return compare(
        values[: len(values) - YEAR_DAYS],
        last_day - timedelta(days=YEAR_DAYS),
        window,
        block_weeks,
        lookback_weeks,
        history_days - YEAR_DAYS,
    )


def seasonally_adjusted(now: Comparison, last_year: Comparison) -> Comparison:
    """Scale the expectation by how much last year's same weeks moved against their normal."""
    ratio = last_year.actual / last_year.expected if last_year.expected else 1.0
    return Comparison(
        now.window_days,
        now.actual,
        now.expected * ratio,
        now.normal_weeks,
        tuple(p * ratio for p in now.profile),
        seasonal=True,
    )


def days_below(
    values: Sequence[int], last_day: date, profile: Sequence[float], threshold_pct: float
) -> int:
    """How many days in a row, counting back from `last_day`, each fell below its weekday's
    normal by at least the threshold (the "for N days" a rep reads)."""
    last = last_day.weekday()
    keep = 1 - threshold_pct / 100
    streak = 0
    for back in range(len(values)):
        expected = profile[(last - back) % WEEK]
        if not expected:
            continue  # a day the account never uses (a weekend) neither breaks nor counts
        if values[len(values) - 1 - back] > expected * keep:
            break
        streak += 1
    return streak


def recent_total(values: Sequence[int], days: int) -> int:
    """The sum of the last `days` days (none when `days` is 0)."""
    return sum(values[-days:]) if days else 0


def onset(
    values: Sequence[int], last_day: date, profile: Sequence[float], search_days: int
) -> date:
    """The day a shortfall against `profile` most likely began: of the last `search_days`
    days, the start of the run to `last_day` whose shortfall is the most standard deviations
    of count noise. Days before a drop add expectation but no shortfall, and a start after it
    leaves shortfall out, so the best start is the drop's first day."""
    last = last_day.weekday()
    shortfall = expected = 0.0
    best, best_back = 0.0, 0
    for back in range(min(search_days, len(values))):
        wanted = profile[(last - back) % WEEK]
        shortfall += wanted - values[len(values) - 1 - back]
        expected += wanted
        if expected > 0 and shortfall / math.sqrt(expected) > best:
            best, best_back = shortfall / math.sqrt(expected), back
    return last_day - timedelta(days=best_back)


def same_weeks_last_year(
    values: Sequence[int], last_day: date, window: int, history_days: int
) -> Comparison | None:
    """The window against the same days a year earlier (same weekdays), directly: deep into a
    busy season, the normal before last year's window already holds some of the season, and
    only last year's own weeks say how busy it was."""
    if history_days < YEAR_DAYS + window or len(values) < YEAR_DAYS + window:
        return None
    end = len(values) - YEAR_DAYS
    then = values[end - window : end]
    first = last_day - timedelta(days=YEAR_DAYS + window - 1)
    return Comparison(
        window,
        float(sum(values[len(values) - window :])),
        float(sum(then)),
        window // WEEK,
        tuple(weekday_profile(then, first)),
        seasonal=True,
    )


def weekly_totals(values: Sequence[int], weeks: int) -> list[int]:
    """The totals of the last `weeks` whole weeks, oldest first."""
    end = len(values)
    return [sum(values[end - (w + 1) * WEEK : end - w * WEEK]) for w in reversed(range(weeks))]


def slope_t(series: Sequence[float]) -> tuple[float, float]:
    """The least-squares slope of `series` per step and its t statistic (slope over its
    standard error; 0 when the series is too short or exactly on a line with no slope)."""
    n = len(series)
    if n < 3:
        return 0.0, 0.0
    mean_x, mean_y = (n - 1) / 2, sum(series) / n
    sxx = sum((x - mean_x) ** 2 for x in range(n))
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(series)) / sxx
    residual = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in enumerate(series))
    error = math.sqrt(residual / (n - 2) / sxx)
    if error == 0:
        return slope, math.copysign(math.inf, slope) if slope else 0.0
    return slope, slope / error
