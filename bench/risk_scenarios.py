"""Precision, recall and persistence of the usage-drop family of flags on labelled accounts.

    python -m bench.risk_scenarios [--variants 20] [--seed 7] [--noise 1.0]

Each scenario family is an account's daily active users with noise, many seeded variants each
(their size, the depth of a drop, when it began, the season's shape all drawn from the seed).
The noise is Poisson's: each day normal about its level with a spread of `NOISE` (1.0) times the
square root of the level, the count noise the rules' z test assumes (`--noise` scales it); one
more line is printed at `ROBUST_NOISE` (1.5x) to show how the figures hold up in noisier data.
The daily run is simulated as it works: every day from 14 weeks before the evaluation day
(`TODAY`) the account is assessed on the last 448 days, the reasons raised are handed to the next
day's assessment (`AccountState.previous_reasons`), and the reasons of `TODAY` are what is scored.
Days older than 182 read back through the rollups' 3% rounding.

- Precision and recall of the usage-drop family (usage_drop, login_frequency_drop,
  usage_decline) as of `TODAY`: a churn scenario flagged then is found; a flag on a scenario
  that is not churn is a false alarm. Targets (issue 12): both at least 0.95.
- Flag persistence: for persistent drops (onset 130 days before the end of a longer series), the
  share of days from the first flag to 13 weeks later on which the account is still flagged.
  Target: at least 0.95. On the same series: the median days from the onset to the first flag
  (issue 6's figure; its target was 7).
- Key-feature decline (`key_feature_decline` alone, one key feature): the feature's daily use
  follows six of the families (steady, weekly pattern, holiday lull, growth, persistent sudden
  drop, 3-seat sustained drop) while active users stay steady; precision, recall, share flagged.

Not measured: `login_frequency_drop` (the accounts have no logins series, so only usage_drop and
slow_decline run for the family; it is the same code as usage_drop on another series), slow or
seasonal declines of a key feature, and anything the rules other than these raise.

Baselines measured in the same run, on the same series:
- the previous release: `integration/risk/usage.py` and `baselines.py` as of commit
  PREVIOUS_RELEASE, read with `git show` and loaded as modules (its `usage_drop`, which keeps
  nothing from one day to the next);
- the skeleton's rule: that same code with a flat 4-week normal right before the window (no
  lookback) and no seasons.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from integration.config.schema import RiskConfig, UsageDropRule
from integration.risk.assess import RULES, assess
from integration.risk.reasons import Reason
from integration.signals.accounts import AccountState, UsageHistory
from integration.store import rollups

HISTORY = 448  # days the daily run reads
TODAY = date(2026, 11, 22)  # the evaluation day
SIMULATED_DAYS = 98  # the daily run is simulated from 14 weeks before TODAY
PERSIST_ONSET_BACK = 130  # persistence series: the drop begins this many days before their end
PERSIST_DAYS = 91  # flag persistence is measured from the first flag to 13 weeks later
FAMILY = frozenset({"usage_drop", "login_frequency_drop", "usage_decline"})
PREVIOUS_RELEASE = "972823f"  # the last commit before issue 12's risk modelling
NOISE = 1.0  # the day-to-day spread, in multiples of Poisson count noise (sqrt of the level)
ROBUST_NOISE = 1.5  # one more line at this spread: how the figures hold up in noisier data
ROOT = Path(__file__).resolve().parents[1]

Level = Callable[[date], float]  # expected daily active users on a day


@dataclass(frozen=True)
class Account:
    family: str
    churn: bool
    level: Level
    seats: int
    onset: date | None = None  # when a persistent drop began (persistence is measured on it)


def weekday(base: float, weekend_share: float) -> Level:
    return lambda day: base if day.weekday() < 5 else base * weekend_share


def _days_back(day: date, end: date = TODAY) -> int:
    return (end - day).days


def _season(
    start_back: int, weeks: int, factor: float, end: date = TODAY
) -> Callable[[date], float]:
    """A season of `weeks` starting `start_back` days before `end`, the same weeks a year
    earlier too (364 days, the same weekdays)."""

    def scale(day: date) -> float:
        back = _days_back(day, end)
        for offset in (0, 364):
            if start_back + offset - weeks * 7 < back <= start_back + offset:
                return factor
        return 1.0

    return scale


def _pattern(rng: random.Random) -> tuple[Level, float]:
    base = rng.uniform(15, 60)
    return weekday(base, rng.uniform(0.1, 0.4)), base


def _seats(base: float) -> int:
    return round(base * 1.4) + 5


# Each family draws one account from the seed: (rng) -> Account.
def steady(rng: random.Random) -> Account:
    base = rng.uniform(10, 60)
    return Account("steady", False, lambda d: base, _seats(base))


def weekly_pattern(rng: random.Random) -> Account:
    level, base = _pattern(rng)
    return Account("weekly pattern", False, level, _seats(base))


def holiday_lull(rng: random.Random) -> Account:
    level, base = _pattern(rng)
    lull = _season(rng.randint(3, 42), 2, 0.35)  # ten working days or so, as last year
    return Account("holiday lull (as last year)", False, lambda d: level(d) * lull(d), _seats(base))


def seasonal_dip(rng: random.Random) -> Account:
    level, base = _pattern(rng)
    dip = _season(rng.randint(7, 63), 5, 0.4)
    return Account("seasonal dip (as last year)", False, lambda d: level(d) * dip(d), _seats(base))


def vacation_three_seats(rng: random.Random) -> Account:
    start = rng.randint(3, 28)
    return Account(
        "vacation dip, 3 seats",
        False,
        lambda d: 1 if start - 7 < _days_back(d) <= start else 3,
        3,
    )


def growth(rng: random.Random) -> Account:
    start, rate = rng.randint(30, 120), rng.uniform(0.1, 0.4)
    return Account(
        "growth", False, lambda d: 20 + max(0, start - _days_back(d)) * rate, 20 + 2 * start
    )


def low_utilization(rng: random.Random) -> Account:
    return Account("low utilization", False, lambda d: 6, 60)


def _seasonal_product(rng: random.Random, fall: bool) -> Account:
    """A busy season (1.6-2x) or a quiet one (0.4-0.6x), eight weeks each year, with TODAY one
    to five weeks into it; with `fall`, usage halves from the season's start (or up to three
    weeks before it) and stays there: half of last year's same weeks."""
    level, base = _pattern(rng)
    busy = rng.random() < 0.5
    into = rng.randint(7, 35)
    season = _season(into, 8, rng.uniform(1.6, 2.0) if busy else rng.uniform(0.4, 0.6))
    fall_back = into + rng.randint(0, 21)
    halved = (lambda d: 0.5 if _days_back(d) <= fall_back else 1.0) if fall else (lambda d: 1.0)
    name = "seasonal product, 50% below last year" if fall else "seasonal product, ordinary season"
    top = base * (2.0 if busy else 1.0)
    return Account(name, fall, lambda d: level(d) * season(d) * halved(d), _seats(top))


def seasonal_ordinary(rng: random.Random) -> Account:
    return _seasonal_product(rng, fall=False)


def seasonal_fall(rng: random.Random) -> Account:
    return _seasonal_product(rng, fall=True)


def persistent_drop(rng: random.Random, onset_back: int | None = None) -> Account:
    """A sudden drop of 35-70% that lasts, beginning 2 to 13 weeks before TODAY."""
    level, base = _pattern(rng)
    keep = 1 - rng.uniform(0.35, 0.70)
    back = onset_back if onset_back is not None else rng.randint(14, 91)
    onset = TODAY - timedelta(days=back)
    return Account(
        "persistent sudden drop",
        True,
        lambda d: level(d) * (keep if d >= onset else 1.0),
        _seats(base),
        onset,
    )


def sustained_three_seats(rng: random.Random) -> Account:
    back = rng.randint(21, 91)
    return Account("sustained drop, 3 seats", True, lambda d: 1 if _days_back(d) < back else 3, 3)


def slow_decline(rng: random.Random) -> Account:
    """2-4% of the old level a week, starting 3 to 4 months before TODAY."""
    level, base = _pattern(rng)
    rate, start = rng.uniform(0.02, 0.04), rng.randint(91, 122)

    def scale(day: date) -> float:
        weeks_in = max(0, start - _days_back(day)) / 7
        return max(0.2, 1 - rate * weeks_in)

    return Account("slow decline", True, lambda d: level(d) * scale(d), _seats(base))


FAMILIES: list[Callable[[random.Random], Account]] = [
    steady,
    weekly_pattern,
    holiday_lull,
    seasonal_dip,
    vacation_three_seats,
    growth,
    low_utilization,
    seasonal_ordinary,
    persistent_drop,
    sustained_three_seats,
    slow_decline,
    seasonal_fall,
]


def series(
    account: Account, rng: random.Random, end: date, days: int, noise: float = NOISE
) -> list[int]:
    """Each day's count: normal about the day's level with a spread of `noise` times the
    square root of the level (1.0: Poisson count noise, what the rules' z test assumes),
    rounded and capped at the seats."""
    first = end - timedelta(days=days - 1)
    values = []
    for n in range(days):
        mean = max(0.0, account.level(first + timedelta(days=n)))
        noisy = rng.gauss(mean, math.sqrt(mean) * noise) if mean > 0 else 0.0
        values.append(min(account.seats, max(0, round(noisy))))
    return values


def as_stored(values: list[int]) -> tuple[int, ...]:
    """The days as the rollups give them back: days before the recent ring read within 3%."""
    cut = max(0, len(values) - rollups.RECENT_DAYS)
    old = [rollups.DECODE[rollups.encode(value)] for value in values[:cut]]
    return (*old, *values[cut:])


def state_on(values: list[int], end: int, last_day: date, seats: int) -> AccountState:
    """The account as the daily run loads it on `last_day` (values[end - 1])."""
    stored = as_stored(values[max(0, end - HISTORY) : end])
    usage = UsageHistory(
        "bench",
        last_day,
        stored,
        stored,
        last_day - timedelta(days=len(stored) - 1),
        seats,
        0,
        None,
    )
    return AccountState("bench", usage)


def _now(last_day: date) -> datetime:
    return datetime.combine(last_day + timedelta(days=1), datetime.min.time(), UTC)


# Only the usage-drop family runs, through assess() (which folds overlapping reasons).
ONLY_USAGE = RiskConfig.model_validate(
    {name: {"enabled": name in {"usage_drop", "slow_decline"}} for name in RULES}
)

Rule = Callable[[AccountState, datetime], list[Reason]]


def ours(state: AccountState, now: datetime) -> list[Reason]:
    return list(assess(state, ONLY_USAGE, now).reasons)


def daily_run(
    values: list[int],
    last_day: date,
    days: int,
    seats: int,
    rule: Rule,
    family: frozenset[str] = FAMILY,
    feature: list[int] | None = None,
) -> Iterator[tuple[date, list[Reason]]]:
    """Each day's reasons for the `days` days ending `last_day` (the last of `values`), each
    day's assessment handed the reasons of the day before. With `feature`, that series is the
    key feature's daily use (`values` stay the active users)."""
    previous: dict[str, dict[str, Any]] = {}
    for back in range(days - 1, -1, -1):
        day = last_day - timedelta(days=back)
        state = state_on(values, len(values) - back, day, seats)
        if feature is not None:
            used = as_stored(feature[max(0, len(feature) - back - HISTORY) : len(feature) - back])
            state = replace(state, usage=replace(state.usage, daily_metrics={KEY_FEATURE: used}))
        state = replace(state, previous_reasons=previous)
        reasons = [r for r in rule(state, _now(day)) if r.code in family]
        previous = {r.key: r.details for r in reasons}
        yield day, reasons


def previous_release() -> types.ModuleType:
    """`integration/risk/usage.py` as of PREVIOUS_RELEASE, on that commit's baselines."""
    modules = {}
    for name in ("baselines", "usage"):
        source = subprocess.run(  # noqa: S603 - a fixed git command on our own repository
            ["git", "show", f"{PREVIOUS_RELEASE}:integration/risk/{name}.py"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        source = source.replace("integration.risk.baselines", "bench_previous_release.baselines")
        module = types.ModuleType(f"bench_previous_release.{name}")
        sys.modules[module.__name__] = module
        exec(compile(source, f"{PREVIOUS_RELEASE}:{name}.py", "exec"), module.__dict__)  # noqa: S102 - our own code at a pinned commit
        modules[name] = module
    return modules["usage"]


def old_rule(module: types.ModuleType, rule: UsageDropRule) -> Rule:
    return lambda state, now: list(module.usage_drop(state, rule, now))


@dataclass
class Tally:
    found: int = 0
    missed: int = 0
    false_alarms: int = 0
    clean: int = 0

    def add(self, churn: bool, flagged: bool) -> None:
        if churn:
            self.found, self.missed = self.found + flagged, self.missed + (not flagged)
        else:
            self.false_alarms, self.clean = self.false_alarms + flagged, self.clean + (not flagged)

    @property
    def precision(self) -> float:
        flagged = self.found + self.false_alarms
        return self.found / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        churn = self.found + self.missed
        return self.found / churn if churn else 1.0


def score(
    rules: dict[str, Rule], variants: int, seed: int, noise: float = NOISE
) -> dict[str, dict[str, float]]:
    """Every rule on the same accounts: precision, recall, and the share flagged per family."""
    rng = random.Random(seed)
    tallies = {label: Tally() for label in rules}
    flagged: dict[str, dict[str, int]] = {label: {} for label in rules}
    for family in FAMILIES:
        for _ in range(variants):
            account = family(rng)
            values = series(account, rng, TODAY, HISTORY + SIMULATED_DAYS, noise)
            for label, rule in rules.items():
                if label == "new":
                    *_, (_, reasons) = daily_run(values, TODAY, SIMULATED_DAYS, account.seats, rule)
                else:  # the previous rules keep nothing from a day before: judge TODAY alone
                    reasons = rule(state_on(values, len(values), TODAY, account.seats), _now(TODAY))
                hit = any(r.code in FAMILY for r in reasons)
                tallies[label].add(account.churn, hit)
                counts = flagged[label]
                counts[account.family] = counts.get(account.family, 0) + hit
    return {
        label: {
            "precision": tallies[label].precision,
            "recall": tallies[label].recall,
            **{f"flagged[{name}]": n / variants for name, n in flagged[label].items()},
        }
        for label in rules
    }


def persistence(
    rules: dict[str, Rule], variants: int, seed: int, noise: float = NOISE
) -> dict[str, tuple[float, float]]:
    """For persistent drops: days flagged from the first flag to 13 weeks later, as a share,
    and the median days from the onset to the first flag (the onset day itself: 0)."""
    rng = random.Random(seed + 1)
    kept = {label: [0, 0] for label in rules}
    to_flag: dict[str, list[int]] = {label: [] for label in rules}
    end = TODAY
    onset_index = 6  # the daily run's first day is 136 days before `end`, the onset 130
    for _ in range(variants):
        account = persistent_drop(rng, onset_back=PERSIST_ONSET_BACK)
        values = series(account, rng, end, HISTORY + PERSIST_ONSET_BACK + 7, noise)
        for label, rule in rules.items():
            days = [
                bool(reasons)
                for _, reasons in daily_run(
                    values, end, PERSIST_ONSET_BACK + 7, account.seats, rule
                )
            ]
            if True not in days:
                continue
            first = days.index(True)
            to_flag[label].append(first - onset_index)
            measured = days[first : first + PERSIST_DAYS + 1]
            kept[label][0] += sum(measured)
            kept[label][1] += len(measured)
    return {
        label: (
            k / n if n else math.nan,
            statistics.median(to_flag[label]) if to_flag[label] else math.nan,
        )
        for label, (k, n) in kept.items()
    }


KEY_FEATURE = "reports_created"
ONLY_KEY_FEATURE = RiskConfig.model_validate(
    {
        **{name: {"enabled": name == "key_feature_decline"} for name in RULES},
        "key_feature_decline": {"key_features": [KEY_FEATURE]},
    }
)
# Key-feature decline on a few families: the feature's daily use follows the family's level,
# the account's active users stay steady (so only the feature can fall).
KEY_FEATURE_FAMILIES: list[Callable[[random.Random], Account]] = [
    steady,
    weekly_pattern,
    holiday_lull,
    growth,
    persistent_drop,
    sustained_three_seats,
]


def key_feature_score(variants: int, seed: int, noise: float = NOISE) -> dict[str, float]:
    """Precision, recall and the share flagged per family of `key_feature_decline` alone."""
    rng = random.Random(seed + 2)
    tally, flagged = Tally(), {}
    family = frozenset({"key_feature_decline"})

    def rule(state: AccountState, now: datetime) -> list[Reason]:
        return list(assess(state, ONLY_KEY_FEATURE, now).reasons)

    for make in KEY_FEATURE_FAMILIES:
        for _ in range(variants):
            account = make(rng)
            feature = series(account, rng, TODAY, HISTORY + SIMULATED_DAYS, noise)
            users = [40] * len(feature)
            *_, (_, reasons) = daily_run(
                users, TODAY, SIMULATED_DAYS, 60, rule, family, feature=feature
            )
            tally.add(account.churn, bool(reasons))
            flagged[account.family] = flagged.get(account.family, 0) + bool(reasons)
    return {
        "precision": tally.precision,
        "recall": tally.recall,
        **{f"flagged[{name}]": n / variants for name, n in flagged.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", type=float, default=NOISE, help="x Poisson count noise")
    args = parser.parse_args()
    old = previous_release()
    rules: dict[str, Rule] = {
        "new": ours,
        "previous_release": old_rule(old, UsageDropRule()),
        "baseline_skeleton_rule": old_rule(old, UsageDropRule(lookback_weeks=4, seasonal="no")),
    }
    for label, figures in score(rules, args.variants, args.seed, args.noise).items():
        for name, value in figures.items():
            print(f"risk.{label}.{name}", round(value, 3))
    for label, (share, days) in persistence(rules, args.variants, args.seed, args.noise).items():
        print(f"risk.{label}.flag_persistence_13_weeks", round(share, 3))
        print(f"risk.{label}.median_days_onset_to_first_flag", days)
    for name, value in key_feature_score(args.variants, args.seed, args.noise).items():
        print(f"risk.key_feature_decline.{name}", round(value, 3))
    # Robustness: this code alone at a noisier spread.
    noisy = score({"new": ours}, args.variants, args.seed, ROBUST_NOISE)["new"]
    share, days = persistence({"new": ours}, args.variants, args.seed, ROBUST_NOISE)["new"]
    print(
        f"risk.new.noise_{ROBUST_NOISE}x",
        "precision",
        round(noisy["precision"], 3),
        "recall",
        round(noisy["recall"], 3),
        "flag_persistence_13_weeks",
        round(share, 3),
        "median_days_onset_to_first_flag",
        days,
    )
    print(
        "python",
        platform.python_version(),
        "families",
        len(FAMILIES),
        "variants",
        args.variants,
        "noise_x_poisson",
        args.noise,
        "evaluation_day",
        TODAY.isoformat(),
        "previous_release",
        PREVIOUS_RELEASE,
    )


if __name__ == "__main__":
    main()
