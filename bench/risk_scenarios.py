"""Precision and recall of the usage-drop flag on a labelled set of generated accounts.

    python -m bench.risk_scenarios [--variants 20] [--seed 7]

Each scenario is an account's daily active users with noise (seeded), 448 days long. The rule is
evaluated as of every day from two weeks before the scenario's event to six weeks after it.
A scenario labelled churn counts as found if any evaluation flags it; any flag on a scenario
labelled not-churn is a false positive. For sudden declines it also reports the median days from
the true onset to the first flag. Targets (issue 6): precision and recall at least 0.95, median
days to flag at most 7. Baseline in the same run: the skeleton's rule (flat 28-day average
against the last 7 days, no weekdays, no lookback, no seasons).
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from integration.config.schema import UsageDropRule
from integration.risk.usage import usage_drop
from integration.signals.accounts import AccountState, UsageHistory
from integration.store import rollups

DAYS = 448
EVENT_BACK = 42  # the scenario's event (onset, holiday, vacation) is this many days before the end
START_BACK = EVENT_BACK + 14  # evaluate from two weeks before the event to the last day
TODAY = date(2026, 11, 22)
Level = Callable[[date, int], float]  # (day, days since the event; negative before) -> users


@dataclass(frozen=True)
class Scenario:
    name: str
    churn: bool
    level: Level
    seats: int = 50


def _weekday(base: float, weekend_share: float = 0.25) -> Level:
    return lambda day, _: base if day.weekday() < 5 else base * weekend_share


def _scaled(pattern: Level, factor: Callable[[date, int], float]) -> Level:
    return lambda day, since: pattern(day, since) * factor(day, since)


def _last_year(day: date, since: int) -> int:
    """Days since the same event a year earlier (the season repeats every 364 days)."""
    return since + 364


SCENARIOS = [
    Scenario("steady", False, lambda d, s: 30),
    Scenario("weekly pattern", False, _weekday(40)),
    Scenario(
        "holiday lull (as last year)",
        False,
        _scaled(
            _weekday(40), lambda d, s: 0.35 if (0 <= s < 10 or 0 <= _last_year(d, s) < 10) else 1
        ),
    ),
    Scenario(
        "seasonal (as last year)",
        False,
        _scaled(
            _weekday(40), lambda d, s: 0.4 if (0 <= s < 35 or 0 <= _last_year(d, s) < 35) else 1
        ),
    ),
    Scenario("vacation dip, 3 seats", False, lambda d, s: 1 if 0 <= s < 7 else 3, seats=3),
    Scenario("growth", False, lambda d, s: 20 + max(0, s) * 0.3),
    Scenario("low utilization", False, lambda d, s: 6, seats=60),
    Scenario("sudden decline", True, _scaled(_weekday(40), lambda d, s: 0.35 if s >= 0 else 1)),
    Scenario(
        "slow decline", True, _scaled(_weekday(40), lambda d, s: max(0.3, 1 - max(0, s) / 40))
    ),
    Scenario(
        "seasonal product that also declines",
        True,
        _scaled(
            _weekday(40),
            lambda d, s: 0.12 if 0 <= s < 35 else 0.4 if 0 <= _last_year(d, s) < 35 else 1,
        ),
    ),
    Scenario("sustained drop, 3 seats", True, lambda d, s: 1 if s >= 0 else 3, seats=3),
]


def series(scenario: Scenario, rng: random.Random) -> list[int]:
    first = TODAY - timedelta(days=DAYS - 1)
    values = []
    for n in range(DAYS):
        day = first + timedelta(days=n)
        since = n - (DAYS - 1 - EVENT_BACK)
        mean = max(0.0, scenario.level(day, since))
        noisy = rng.gauss(mean, math.sqrt(mean) * 0.8) if mean > 0 else 0.0
        values.append(min(scenario.seats, max(0, round(noisy))))
    return values


def as_stored(values: list[int]) -> tuple[int, ...]:
    """The days as the rollups give them back: days before the recent ring read within 3%."""
    cut = max(0, len(values) - rollups.RECENT_DAYS)
    old = [rollups.DECODE[rollups.encode(value)] for value in values[:cut]]
    return (*old, *values[cut:])


def first_flag(values: list[int], rule: UsageDropRule, seats: int) -> int | None:
    """Days after the event when the rule first flags (negative: before it), or None."""
    for back in range(START_BACK, -1, -1):
        end = len(values) - back
        last_day = TODAY - timedelta(days=back)
        stored = as_stored(values[:end])
        usage = UsageHistory(
            "bench",
            last_day,
            stored,
            stored,
            last_day - timedelta(days=end - 1),
            seats,
            0,
            None,
        )
        now = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), UTC)
        if usage_drop(AccountState("bench", usage), rule, now):
            return EVENT_BACK - back
    return None


def score(rule: UsageDropRule, variants: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    found = missed = false_alarms = clean = 0
    onset_days: list[int] = []
    per_scenario: dict[str, int] = {}
    for scenario in SCENARIOS:
        for _ in range(variants):
            flagged = first_flag(series(scenario, rng), rule, scenario.seats)
            hit = flagged is not None and (not scenario.churn or flagged >= 0)
            if scenario.churn:
                found, missed = found + hit, missed + (not hit)
                if scenario.name == "sudden decline" and hit and flagged is not None:
                    onset_days.append(flagged)
            else:
                false_alarms, clean = false_alarms + hit, clean + (not hit)
            per_scenario[scenario.name] = per_scenario.get(scenario.name, 0) + hit
    return {
        "precision": found / (found + false_alarms) if found + false_alarms else 1.0,
        "recall": found / (found + missed) if found + missed else 1.0,
        "median_days_to_flag_sudden": statistics.median(onset_days) if onset_days else math.nan,
        **{f"flagged[{name}]": count / variants for name, count in per_scenario.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ours = UsageDropRule()
    skeleton = UsageDropRule(lookback_weeks=4, seasonal="no")
    for label, rule in (("usage_drop", ours), ("baseline_skeleton_rule", skeleton)):
        for name, value in score(rule, args.variants, args.seed).items():
            print(f"risk.{label}.{name}", round(value, 3))
    print(
        "python", platform.python_version(), "scenarios", len(SCENARIOS), "variants", args.variants
    )


if __name__ == "__main__":
    main()
