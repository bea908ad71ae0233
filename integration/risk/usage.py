"""Usage and logins: active users and logins against the account's own normal, slow declines
over a quarter, inactivity, stickiness. Pure functions of an account's state; `now` is passed in.

A flag still open is judged against what it found when raised (`AccountState.previous_reasons`):
the level before the drop, kept in the reason's details with the day it began, not a normal that
slides into the drop. It clears when usage is back near that level for `recover_days`, or once
usage has settled for `settled_days` at a level short of it by less than the rule's threshold (a
customer who downsized: a new account at that level would not be flagged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from integration.config.schema import (
    SEASON_LOOKBACK_WEEKS,
    InactivityRule,
    SlowDeclineRule,
    StickinessRule,
    UsageDropRule,
)
from integration.risk.baselines import (
    WEEK,
    YEAR_DAYS,
    Comparison,
    compare,
    days_below,
    expected_total,
    onset,
    recent_total,
    same_weeks_last_year,
    seasonally_adjusted,
    slope_t,
    weekday_profile,
    weekly_totals,
    year_over_year,
)
from integration.risk.reasons import Reason, RiskLevel
from integration.signals.accounts import AccountState, UsageHistory

# A drop this many times the configured threshold (capped at 100%) makes the flag high, not medium.
HIGH_DROP_FACTOR = 1.5
MIN_SEASONAL_RATIO = 0.1
STICKINESS_DAYS = 28
# A slow decline's weekly totals must fall with a least-squares slope this many standard errors
# below zero: a steady fall, not one bad week.
MIN_SLOPE_T = 2.0
# Last year's busy weeks count as a season when the weeks after them were busy too.
BUSY_WEEKS_AFTER = 2


@dataclass(frozen=True, slots=True)
class Measure:
    """What a sentence calls the series: "Daily active users are", "Use of reports is"."""

    label: str
    plural: bool = True

    @property
    def are(self) -> str:
        return "are" if self.plural else "is"

    @property
    def their(self) -> str:
        return "their" if self.plural else "its"


ACTIVE_USERS = Measure("Daily active users")
LOGINS = Measure("Daily logins")


def usage_drop(state: AccountState, rule: UsageDropRule, now: datetime) -> list[Reason]:
    """Active users over the recent window against the account's own normal before it.

    Guards: an account whose normal is below `min_baseline_daily_users` cannot drop, an account
    without a full normal of history is not judged, and a small account (normal at most
    `small_account_max_users` a day) must stay down for `small_account_window_days`, so one or
    two people on vacation in a three-seat account is not a churn risk while a sustained drop is.
    A seasonal product's window is measured against the same weeks last year. Once raised, the
    flag stays until usage is back near the level before the drop.
    """
    return metric_drop(
        state, state.usage.daily_active_users, rule, "usage_drop", "usage_drop", ACTIVE_USERS
    )


def login_frequency_drop(state: AccountState, rule: UsageDropRule, now: datetime) -> list[Reason]:
    """Logins against the account's own normal: people still come, but less often. Whether the
    account is small (and needs the longer window) is judged by its people, not its logins."""
    logins = state.usage.daily_metrics.get("logins", ())
    return metric_drop(
        state,
        logins,
        rule,
        "login_frequency_drop",
        "login_frequency_drop",
        LOGINS,
        sizing=state.usage.daily_active_users,
    )


def metric_drop(
    state: AccountState,
    values: Sequence[int],
    rule: UsageDropRule,
    code: str,
    key: str,
    measure: Measure,
    sizing: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Reason]:
    """One series against its normal: a new drop (first detection), or a drop still open
    measured against the level before it until it recovers.

    While the first-detection measure still sees an open drop, the reason reads as it did
    (re-judging the same day gives the same sentence) but keeps the level and the day the drop
    began from when it was raised; once that measure has slid into the drop, the level before
    it speaks ("down 52% since 2026-09-14 (9 weeks)") until usage recovers."""
    usage = state.usage
    fresh = _new_drop(usage, values, rule, code, key, measure, sizing, extra)
    previous = state.previous_reasons.get(key)
    anchor = _Anchor.read(previous, usage.last_day) if previous is not None and values else None
    if anchor is None or previous is None:
        return [] if fresh is None else [fresh]
    if fresh is not None:
        if fresh.details["seasonal"]:
            return [fresh]
        kept = {"since": anchor.since.isoformat(), "profile": list(anchor.profile)}
        return [replace(fresh, details={**fresh.details, **kept})]
    window = min(len(values), int(previous.get("window_days") or rule.window_days))
    season = season_ratio(usage, values, rule, window)
    return _held_drop(
        values, usage.last_day, anchor, window, rule, code, key, measure, extra, season
    )


def _new_drop(
    usage: UsageHistory,
    values: Sequence[int],
    rule: UsageDropRule,
    code: str,
    key: str,
    measure: Measure,
    sizing: Sequence[int] | None,
    extra: Mapping[str, Any] | None,
) -> Reason | None:
    """First detection: the recent window against the normal before it."""
    comparison = metric_comparison(usage, values, rule, sizing)
    if comparison is None:
        return None
    recent, normal = comparison.per_day
    if normal <= 0 or normal < rule.min_baseline_daily_users:
        return None
    drop_pct = -comparison.change_pct
    noise = math.sqrt(comparison.expected)
    if drop_pct < rule.drop_pct or comparison.expected - comparison.actual < (
        rule.min_significance_z * noise
    ):
        return None
    days = days_below(values, usage.last_day, comparison.profile, rule.drop_pct)
    if comparison.seasonal:  # last year's weeks say nothing of the days before the window
        days = min(days, comparison.window_days)
    against = (
        "the same weeks last year"
        if comparison.seasonal
        else f"{measure.their} {rule.baseline_days // WEEK}-week normal"
    )
    text = (
        f"{measure.label} fell {drop_pct:.0f}% below {against} "
        f"({recent:.1f} vs {normal:.1f} a day) over the last {comparison.window_days} days"
        + (f", and every day for {days} days." if days > comparison.window_days else ".")
    )
    search = comparison.window_days + rule.lookback_weeks * WEEK
    since = onset(values, usage.last_day, comparison.profile, search)
    details = {
        **(extra or {}),
        "metric": code,
        "observed": round(recent, 2),
        "baseline": round(normal, 2),
        "drop_pct": round(drop_pct, 1),
        "window_days": comparison.window_days,
        "days_below": days,
        "seasonal": comparison.seasonal,
        "since": since.isoformat(),
        "profile": [round(level, 2) for level in comparison.profile],
    }
    return Reason(code, key, text, _severity(drop_pct, rule.drop_pct), details)


def _severity(drop_pct: float, threshold: float) -> RiskLevel:
    high = drop_pct >= min(100.0, threshold * HIGH_DROP_FACTOR)
    return RiskLevel.HIGH if high else RiskLevel.MEDIUM


@dataclass(frozen=True, slots=True)
class _Anchor:
    """An open flag's level before the fall, read back from its details."""

    since: date
    baseline: float
    profile: tuple[float, ...]

    @classmethod
    def read(cls, details: Mapping[str, Any], last_day: date) -> _Anchor | None:
        """None when the details cannot anchor: written before anchors existed, a seasonal
        comparison (judged afresh: last year's same weeks move with the calendar), or odd."""
        if details.get("seasonal"):
            return None
        try:
            since = date.fromisoformat(str(details["since"]))
            baseline = float(details["baseline"])
            raw = details.get("profile") or ()
            profile = tuple(float(level) for level in raw)
        except (KeyError, TypeError, ValueError):
            return None
        if len(profile) != WEEK or sum(profile) <= 0:
            profile = (baseline,) * WEEK
        if baseline <= 0 or since > last_day or not all(map(math.isfinite, profile)):
            return None
        return cls(since, baseline, profile)

    def expected(self, last_day: date, days: int) -> float:
        return expected_total(self.profile, last_day - timedelta(days=days - 1), days)

    def recovered(self, values: Sequence[int], last_day: date, days: int, pct: float) -> bool:
        days = min(days, len(values))
        return recent_total(values, days) >= pct / 100 * self.expected(last_day, days)

    def settled(
        self, values: Sequence[int], last_day: date, days: int, window: int, pct: float, z: float
    ) -> bool:
        """Usage has settled at a level that is no drop of `pct`: each `window` of the last
        `days` days (whole windows, ending `last_day`) short of this level by less than `pct`,
        and the `days` together above that line by more than `z` standard deviations of count
        noise, so a drop hovering near the threshold stays flagged. Only days since the drop
        began count: the level before it is no settling."""
        window = max(1, min(window, days))
        days -= days % window
        if days > len(values) or (last_day - self.since).days + 1 < days:
            return False
        share = 1 - pct / 100
        for n in range(days // window):
            end = len(values) - n * window
            actual = sum(values[end - window : end])
            if actual < share * self.expected(last_day - timedelta(days=n * window), window):
                return False
        expected = self.expected(last_day, days)
        return sum(values[len(values) - days :]) - share * expected >= z * math.sqrt(expected)


def _held_drop(
    values: Sequence[int],
    last_day: date,
    kept: _Anchor,
    window: int,
    rule: UsageDropRule,
    code: str,
    key: str,
    measure: Measure,
    extra: Mapping[str, Any] | None,
    season: float | None,
) -> list[Reason]:
    """An open drop against the level before it: [] once recovered, else the reason again.
    In a season (last year's same weeks moved), that level moves as last year's did."""
    anchor = kept
    if season is not None:
        anchor = replace(kept, profile=tuple(level * season for level in kept.profile))
    if anchor.recovered(values, last_day, rule.recover_days, rule.recover_pct):
        return []
    if anchor.settled(
        values, last_day, rule.settled_days, window, rule.drop_pct, rule.min_significance_z
    ):
        return []  # settled at a level that is no drop: a new account there would not be flagged
    actual, expected = float(recent_total(values, window)), anchor.expected(last_day, window)
    if expected <= 0:
        return []
    drop_pct = (1 - actual / expected) * 100
    down_days = (last_day - anchor.since).days + 1
    against = "" if season is None else " (the season as last year)"
    text = (
        f"{measure.label} {measure.are} down {drop_pct:.0f}% since {anchor.since.isoformat()} "
        f"({_duration(down_days)}): {actual / window:.1f} vs {expected / window:.1f} a day"
        f"{against}."
    )
    details = {
        **(extra or {}),
        "metric": code,
        "observed": round(actual / window, 2),
        "baseline": anchor.baseline,
        "drop_pct": round(drop_pct, 1),
        "window_days": window,
        "days_down": down_days,
        "seasonal": False,
        "since": anchor.since.isoformat(),
        "profile": list(kept.profile),
    }
    return [Reason(code, key, text, _severity(drop_pct, rule.drop_pct), details)]


def _duration(days: int) -> str:
    return f"{days} days" if days < 2 * WEEK else f"{days // WEEK} weeks"


def usage_decline(state: AccountState, rule: SlowDeclineRule, now: datetime) -> list[Reason]:
    """Active users in the recent weeks against the level a quarter ago: the slow fade no
    weekly window sees. Flagged when the decline is large, significant against count noise, and
    steady (every recent week below the old level, and weekly totals falling on a least-squares
    line). With a year of history, weeks that last year also moved that way are judged against
    last year's same weeks. Once raised, it stays until usage is back near the old level."""
    usage, values = state.usage, state.usage.daily_active_users
    previous = state.previous_reasons.get("usage_decline")
    if previous is not None and values:
        held = _held_decline(values, usage.last_day, previous, rule)
        if held is not None:
            return held
    recent_days, back_days = rule.compare_weeks * WEEK, rule.lookback_weeks * WEEK
    history = (usage.last_day - usage.first_day).days + 1 if usage.first_day else 0
    if min(len(values), history) < recent_days + back_days:
        return []
    earlier = values[len(values) - back_days - recent_days : len(values) - back_days]
    actual, expected = float(recent_total(values, recent_days)), float(sum(earlier))
    if expected <= 0 or expected / recent_days < rule.min_baseline_daily_users:
        return []
    last_year = _last_years_season(values, recent_days, history, rule)
    seasonal = last_year is not None
    if last_year is not None:
        expected = last_year
    decline = (1 - actual / expected) * 100
    if decline < rule.decline_pct or expected - actual < rule.min_significance_z * math.sqrt(
        expected
    ):
        return []
    weekly_level = expected / rule.compare_weeks
    weeks = weekly_totals(values, rule.compare_weeks)
    if any(week > weekly_level * (1 - rule.decline_pct / 200) for week in weeks):
        return []  # a blip (a holiday, one bad week), not a sustained fall
    recover_days = min(rule.recover_days, recent_days)
    if recent_total(values, recover_days) >= rule.recover_pct / 100 * expected * (
        recover_days / recent_days
    ):
        return []  # already back near the old level: the flag would clear at once
    if not seasonal:
        _, t = slope_t(weekly_totals(values, rule.compare_weeks + rule.lookback_weeks))
        if t > -MIN_SLOPE_T:
            return []
    recent, normal = actual / recent_days, expected / recent_days
    if seasonal:
        text = (
            f"{ACTIVE_USERS.label} are down {decline:.0f}% on the same {rule.compare_weeks} weeks "
            f"last year ({recent:.1f} vs {normal:.1f} a day)."
        )
        since = usage.last_day - timedelta(days=recent_days - 1)
    else:
        text = _decline_text(decline, rule.lookback_weeks, recent, normal)
        since = usage.last_day - timedelta(days=back_days)
    first_earlier = usage.last_day - timedelta(days=back_days + recent_days - 1)
    details = {
        "metric": "usage_decline",
        "observed": round(recent, 2),
        "baseline": round(normal, 2),
        "drop_pct": round(decline, 1),
        "weeks": rule.lookback_weeks,
        "window_days": recent_days,
        "seasonal": seasonal,
        "since": since.isoformat(),
        "profile": [round(v, 2) for v in weekday_profile(earlier, first_earlier)],
    }
    return [
        Reason(
            "usage_decline",
            "usage_decline",
            text,
            _severity(decline, rule.decline_pct * 2),  # high from a fall of 60% by default
            details,
        )
    ]


def _decline_text(decline: float, weeks: int, recent: float, normal: float) -> str:
    per_week = decline / weeks if weeks else decline
    pace = f"about {per_week:.0f}% a week" if per_week >= 0.5 else "less than 1% a week"
    return (
        f"{ACTIVE_USERS.label} are down {decline:.0f}% over {weeks} weeks, {pace} "
        f"({recent:.1f} vs {normal:.1f} a day)."
    )


def _held_decline(
    values: Sequence[int], last_day: date, previous: Mapping[str, Any], rule: SlowDeclineRule
) -> list[Reason] | None:
    """An open decline against the level it fell from: [] once recovered, else the reason."""
    anchor = _Anchor.read(previous, last_day)
    if anchor is None:
        return None
    if anchor.recovered(values, last_day, rule.recover_days, rule.recover_pct):
        return []
    window = min(len(values), rule.compare_weeks * WEEK)
    # Week by week, with no noise margin: the recovery at `recover_pct` lies within any margin
    # of count noise above a 20% decline, so one would leave this test nothing to do.
    if anchor.settled(values, last_day, rule.settled_days, WEEK, rule.decline_pct, 0.0):
        return []  # settled at a level no longer a decline of `decline_pct`
    actual, expected = float(recent_total(values, window)), anchor.expected(last_day, window)
    if expected <= 0:
        return None
    decline = (1 - actual / expected) * 100
    weeks = max(1, (last_day - anchor.since).days // WEEK)
    details = {
        "metric": "usage_decline",
        "observed": round(actual / window, 2),
        "baseline": anchor.baseline,
        "drop_pct": round(decline, 1),
        "weeks": weeks,
        "window_days": window,
        "seasonal": False,
        "since": anchor.since.isoformat(),
        "profile": list(anchor.profile),
    }
    text = _decline_text(decline, weeks, actual / window, expected / window)
    severity = _severity(decline, rule.decline_pct * 2)
    return [Reason("usage_decline", "usage_decline", text, severity, details)]


def _last_years_season(
    values: Sequence[int], days: int, history: int, rule: SlowDeclineRule
) -> float | None:
    """Last year's total for the same `days` when those weeks were a season (they moved at
    least half the decline threshold against the 8 weeks before them, either way), or always
    with `seasonal: yes`; None without a year of history or when last year was ordinary or
    an outage."""
    before_days = SEASON_LOOKBACK_WEEKS * WEEK
    if rule.seasonal == "no" or min(len(values), history) < YEAR_DAYS + days + before_days:
        return None
    end = len(values) - YEAR_DAYS
    then = float(sum(values[end - days : end]))
    before = sum(values[end - days - before_days : end - days]) * days / before_days
    if before <= 0 or then / before < MIN_SEASONAL_RATIO:
        return None
    moved = abs(then / before - 1) * 100 >= rule.decline_pct / 2
    if moved and then > before:
        # A busy spell last year must be a season (see _busy_season): every one of its weeks
        # above the weeks before, together beyond the noise of the counts and of that level.
        week_before = before / (days / WEEK)
        weeks = weekly_totals(values[:end], days // WEEK)
        variance = before + before**2 / (week_before * SEASON_LOOKBACK_WEEKS)
        moved = all(week > week_before for week in weeks) and (
            then - before >= rule.min_significance_z * math.sqrt(variance)
        )
    return then if moved or rule.seasonal == "yes" else None


def usage_comparison(usage: UsageHistory, rule: UsageDropRule) -> Comparison | None:
    """Daily active users against their normal (see metric_comparison)."""
    return metric_comparison(usage, usage.daily_active_users, rule)


def metric_comparison(
    usage: UsageHistory,
    values: Sequence[int],
    rule: UsageDropRule,
    sizing: Sequence[int] | None = None,
) -> Comparison | None:
    """The window against the normal (small accounts: the longer window); None without a full
    normal of history. With a year of history, when last year's same weeks moved against their
    own normal by half the drop threshold or more (a quiet season, or a busy one beyond count
    noise), the normal is scaled as last year moved (in a busy season, last year's same weeks
    themselves when they expect more): an ordinary season is no drop, and a season half as busy
    as last year's is one even when it matches the quiet weeks before it."""
    history = (usage.last_day - usage.first_day).days + 1 if usage.first_day else 0
    if len(values) < rule.window_days:
        return None
    block = rule.baseline_days // WEEK
    comparison = None
    for window in (rule.window_days, rule.small_account_window_days):
        comparison = _compare(
            tuple(values), usage.last_day, window, block, rule.lookback_weeks, history
        )
        size = (
            comparison
            if sizing is None  # the series sizes itself: the same comparison, not computed twice
            else _compare(
                tuple(sizing), usage.last_day, window, block, rule.lookback_weeks, history
            )
        )
        if comparison is None or size is None:
            return None
        if size.per_day[1] > rule.small_account_max_users:
            break
    if comparison is None:
        return None
    last_year = _season(usage, values, rule, comparison.window_days)
    if last_year is None:
        return comparison
    adjusted = seasonally_adjusted(comparison, last_year)
    if last_year.actual <= last_year.expected:
        return adjusted
    # Weeks into a busy season, the normal before last year's window holds some of the season
    # (the highest block is taken): last year's own weeks then expect more, and are the truth.
    direct = same_weeks_last_year(values, usage.last_day, comparison.window_days, history)
    return direct if direct is not None and direct.expected > adjusted.expected else adjusted


def _season(
    usage: UsageHistory, values: Sequence[int], rule: UsageDropRule, window: int
) -> Comparison | None:
    """Last year's same `window` days against their own normal, when they were a season: they
    moved by half the drop threshold or more, either way (or always with `seasonal: yes`)."""
    history = (usage.last_day - usage.first_day).days + 1 if usage.first_day else 0
    if rule.seasonal == "no":
        return None
    block = rule.baseline_days // WEEK
    last_year = _year_over_year(
        tuple(values), usage.last_day, window, block, rule.lookback_weeks, history
    )
    # A near-zero week last year was an outage or a shutdown, not a season: ignore it.
    if (
        last_year is None
        or last_year.expected <= 0
        or last_year.actual / last_year.expected < MIN_SEASONAL_RATIO
    ):
        return None
    moved = abs(last_year.change_pct) >= rule.drop_pct / 2
    if moved and last_year.actual > last_year.expected:
        moved = _busy_season(values, last_year, rule.min_significance_z)
    return last_year if moved or rule.seasonal == "yes" else None


def _busy_season(values: Sequence[int], last_year: Comparison, z: float) -> bool:
    """A busy spell last year raises what this year is held to, so it must be a season: last
    year's window and each of the two weeks after it above their normal, together by more than
    `z` standard deviations of noise (the counts', and the normal's own). A quiet account's
    lucky week a year ago is not one: in 18,000 noisy accounts, six such weeks passed a test of
    the window alone, two pass this one."""
    end = len(values) - YEAR_DAYS  # the day after last year's window
    weeks = [sum(values[end + n * WEEK : end + (n + 1) * WEEK]) for n in range(BUSY_WEEKS_AFTER)]
    if end + BUSY_WEEKS_AFTER * WEEK > len(values):
        return False
    normal_week = sum(last_year.profile)  # a whole week of the same normal
    if any(week <= normal_week for week in weeks):
        return False
    expected = last_year.expected + normal_week * BUSY_WEEKS_AFTER
    # The noise of the counts, and of the normal itself (a few weeks' counts too).
    variance = expected + expected**2 / (normal_week * last_year.normal_weeks)
    return last_year.actual + sum(weeks) - expected >= z * math.sqrt(variance)


def season_ratio(
    usage: UsageHistory, values: Sequence[int], rule: UsageDropRule, window: int
) -> float | None:
    """How far last year's same `window` days moved against their normal (2.0: twice as
    busy), when they were a season; None when not."""
    last_year = _season(usage, values, rule, window)
    return None if last_year is None else last_year.actual / last_year.expected


# One assessment asks for the same comparisons several times (the usage drop, the logins' size
# guard, the trend field): remembering the last few saves about a third of the rule time.
_compare = lru_cache(maxsize=32)(compare)


_year_over_year = lru_cache(maxsize=32)(year_over_year)


def inactivity(state: AccountState, rule: InactivityRule, now: datetime) -> list[Reason]:
    """No one at the account has used the product for `days` days (and someone did before)."""
    last = state.usage.last_active
    if last is None:
        return []
    idle = (now - last).days
    if idle < rule.days:
        return []
    text = (
        f"No one at the account has used the product for {idle} days "
        f"(last activity {last.date().isoformat()})."
    )
    details = {"metric": "days_since_last_activity", "observed": idle, "threshold": rule.days}
    severity = RiskLevel.HIGH if idle >= 2 * rule.days else RiskLevel.MEDIUM
    return [Reason("inactivity", "inactivity", text, severity, details)]


def low_stickiness(state: AccountState, rule: StickinessRule, now: datetime) -> list[Reason]:
    """Average daily users against users active in 30 days (DAU/MAU): people come rarely."""
    monthly = state.usage.active_users_30d
    daily = state.usage.daily_active_users
    if monthly < rule.min_monthly_users or len(daily) < STICKINESS_DAYS:
        return []
    ratio = sum(daily[-STICKINESS_DAYS:]) / STICKINESS_DAYS / monthly
    if ratio >= rule.below_ratio:
        return []
    text = (
        f"On an average day only {ratio:.0%} of the {monthly} people active this month use "
        f"the product (below {rule.below_ratio:.0%})."
    )
    details = {"metric": "dau_mau", "observed": round(ratio, 3), "threshold": rule.below_ratio}
    return [Reason("low_stickiness", "low_stickiness", text, RiskLevel.LOW, details)]
