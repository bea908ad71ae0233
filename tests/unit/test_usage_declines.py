"""What a rep sees of usage that stays down, fades slowly, or falls against last year's season:
the daily run is replayed day by day, each day's assessment handed the reasons of the day before,
as the evaluation job does. Time is passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from integration.config.schema import AdoptionRule, RiskConfig
from integration.risk.assess import RiskAssessment, assess
from integration.risk.usage import _Anchor, usage_drop
from integration.signals.accounts import AccountState, UsageHistory

LAST_DAY = date(2026, 11, 22)  # a Sunday: the evaluation day's last complete day
HISTORY = 448
RULES = RiskConfig()
Level = Callable[[date], float]


def account(last_day: date, users: Level, metrics: dict[str, Level] | None = None) -> AccountState:
    """The account as the daily run loads it for `last_day`: 448 days of history."""
    days = [last_day - timedelta(days=back) for back in range(HISTORY - 1, -1, -1)]
    daily = tuple(round(users(day)) for day in days)
    usage = UsageHistory(
        account_id="acct-9",
        last_day=last_day,
        daily_active_users=daily,
        daily_events=daily,
        first_day=days[0],
        seats=None,
        active_users_30d=0,
        last_active=datetime.combine(last_day, datetime.min.time(), UTC),
        daily_metrics={
            name: tuple(round(level(day)) for day in days)
            for name, level in (metrics or {}).items()
        },
    )
    return AccountState("acct-9", usage)


def now_after(last_day: date) -> datetime:
    return datetime.combine(last_day + timedelta(days=1), datetime.min.time(), UTC)


def daily_run(
    users: Level, first: date, last: date, rules: RiskConfig = RULES
) -> dict[date, RiskAssessment]:
    """Assess every day from `first` to `last`, handing each day the reasons of the day before."""
    results: dict[date, RiskAssessment] = {}
    before: RiskAssessment | None = None
    day = first
    while day <= last:
        state = account(day, users)
        if before is not None:
            state = replace(state, previous_reasons={r.key: r.details for r in before.reasons})
        before = results[day] = assess(state, rules, now_after(day))
        day += timedelta(days=1)
    return results


def texts(assessment: RiskAssessment) -> list[str]:
    return [reason.text for reason in assessment.reasons]


ONSET = date(2026, 9, 14)  # ten weeks before LAST_DAY, counting both days


def halved_from_onset(recovered_on: date | None = None) -> Level:
    def level(day: date) -> float:
        if recovered_on is not None and day >= recovered_on:
            return 9
        return 5 if day >= ONSET else 10

    return level


def test_a_drop_that_lasts_ten_weeks_is_still_flagged_with_the_day_it_began() -> None:
    days = daily_run(halved_from_onset(), ONSET - timedelta(days=7), LAST_DAY)
    assert texts(days[LAST_DAY]) == [
        "Daily active users are down 50% since 2026-09-14 (10 weeks): 5.0 vs 10.0 a day."
    ]
    assert days[LAST_DAY].usage_trend_pct == -50.0
    flagged = [day for day, result in days.items() if result.reasons]
    assert flagged == [day for day in days if day >= ONSET + timedelta(days=5)]
    # Judged afresh, the sliding 8-week normal has slid into the drop: no usage_drop.
    fresh = account(LAST_DAY, halved_from_onset())
    assert usage_drop(fresh, RULES.usage_drop, now_after(LAST_DAY)) == []


def test_judging_the_same_day_again_with_the_flag_open_reads_the_same() -> None:
    state = account(LAST_DAY, lambda day: 4 if day > LAST_DAY - timedelta(days=7) else 10)
    first = assess(state, RULES, now_after(LAST_DAY))
    carried = replace(state, previous_reasons={r.key: r.details for r in first.reasons})
    again = assess(carried, RULES, now_after(LAST_DAY))
    assert texts(again) == texts(first)
    assert texts(first) == [
        "Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the "
        "last 7 days."
    ]


def test_the_flag_clears_only_after_seven_days_back_near_the_old_level() -> None:
    back_on = LAST_DAY + timedelta(days=1)
    days = daily_run(
        halved_from_onset(recovered_on=back_on),
        ONSET - timedelta(days=7),
        back_on + timedelta(days=7),
    )
    assert texts(days[back_on + timedelta(days=5)]) == [
        "Daily active users are down 16% since 2026-09-14 (10 weeks): 8.4 vs 10.0 a day."
    ]
    assert days[back_on + timedelta(days=6)].reasons == ()  # seven days at 9 of 10: recovered
    assert days[back_on + timedelta(days=7)].reasons == ()


def test_a_steady_fall_of_three_percent_a_week_over_a_quarter_is_a_usage_decline() -> None:
    started = LAST_DAY - timedelta(weeks=13)

    def fading(day: date) -> float:
        weeks_in = max(0, (day - started).days) / 7
        return 20 * (1 - 0.03 * weeks_in)

    result = assess(account(LAST_DAY, fading), RULES, now_after(LAST_DAY))
    assert texts(result) == [
        "Daily active users are down 33% over 13 weeks, about 3% a week (13.3 vs 20.0 a day)."
    ]
    assert [r.code for r in result.reasons] == ["usage_decline"]


def test_a_slow_fall_that_ends_in_a_sudden_drop_is_said_once_as_the_drop() -> None:
    started = LAST_DAY - timedelta(weeks=13)

    def fading_then_gone(day: date) -> float:
        if day > LAST_DAY - timedelta(days=7):
            return 3
        return 20 * (1 - 0.03 * max(0, (day - started).days) / 7)

    result = assess(account(LAST_DAY, fading_then_gone), RULES, now_after(LAST_DAY))
    assert [r.code for r in result.reasons] == ["usage_drop"]


def weekdays(weekday: float, weekend: float) -> Level:
    return lambda day: weekday if day.weekday() < 5 else weekend


def test_steady_and_weekly_pattern_accounts_raise_nothing_day_after_day() -> None:
    for users in (lambda day: 12.0, weekdays(30, 3)):
        days = daily_run(users, LAST_DAY - timedelta(weeks=4), LAST_DAY)
        assert [day for day, result in days.items() if result.reasons] == []


SEASON_START = LAST_DAY - timedelta(days=20)  # three weeks into an eight-week busy season


def busy_season(this_year: float) -> Level:
    """Ten users a day, twenty in the same eight weeks each year; this year's season at
    `this_year` a day."""

    def level(day: date) -> float:
        for years_back, busy in ((0, this_year), (1, 20.0)):
            start = SEASON_START - timedelta(days=364 * years_back)
            if start <= day < start + timedelta(weeks=8):
                return busy
        return 10

    return level


def test_an_ordinary_busy_season_raises_nothing() -> None:
    days = daily_run(busy_season(20), SEASON_START - timedelta(days=7), LAST_DAY)
    assert [day for day, result in days.items() if result.reasons] == []


def test_a_season_half_as_busy_as_last_year_is_flagged_against_last_years_weeks() -> None:
    # Against the quiet weeks before it, ten a day looks normal; against last year's season
    # it is half.
    days = daily_run(busy_season(10), SEASON_START - timedelta(days=7), LAST_DAY)
    assert texts(days[SEASON_START + timedelta(days=6)]) == [
        "Daily active users fell 50% below the same weeks last year (10.0 vs 20.0 a day) over "
        "the last 7 days."
    ]
    assert texts(days[LAST_DAY]) == texts(days[SEASON_START + timedelta(days=6)])


def test_one_busy_week_last_year_is_not_a_season_to_be_held_to() -> None:
    # A launch week a year ago at twice the usual use, then back to normal: this week at 70%
    # of normal is neither a drop against the normal nor a fall against a "season".
    launch = LAST_DAY - timedelta(days=364 + 6)

    def level(day: date) -> float:
        if launch <= day < launch + timedelta(days=7):
            return 20
        return 7 if day > LAST_DAY - timedelta(days=7) else 10

    assert assess(account(LAST_DAY, level), RULES, now_after(LAST_DAY)).reasons == ()


def test_a_key_feature_whose_use_halves_is_flagged_by_name() -> None:
    rules = RiskConfig(key_feature_not_adopted=AdoptionRule(key_features=("reports_created",)))
    reports = {"reports_created": lambda day: 6.0 if day > LAST_DAY - timedelta(days=7) else 12.0}
    result = assess(account(LAST_DAY, lambda day: 10.0, reports), rules, now_after(LAST_DAY))
    assert texts(result) == [
        "Use of reports created fell 50% below its 4-week normal (6.0 vs 12.0 a day) over the "
        "last 7 days."
    ]
    assert [(r.code, r.key) for r in result.reasons] == [
        ("key_feature_decline", "key_feature_decline:reports_created")
    ]


def test_a_drop_that_settles_at_a_level_that_is_no_drop_clears_after_settled_days() -> None:
    # 20 a day, down to 8 for three weeks (flagged), then 16 for good: 20% below the old level,
    # half the drop threshold. A new account at 16 would not be flagged; after 28 days (the
    # default settled_days) at that level, neither is this one.
    fell, settled = LAST_DAY - timedelta(weeks=3), LAST_DAY

    def level(day: date) -> float:
        return 20 if day < fell else 8 if day < settled else 16

    # (A step down to 16 is also a slow decline of exactly 20% for a while: measure the drop.)
    quiet = RULES.slow_decline.model_copy(update={"enabled": False})
    days = daily_run(
        level, fell, settled + timedelta(weeks=10), RULES.model_copy(update={"slow_decline": quiet})
    )
    assert texts(days[settled + timedelta(days=23)]) == [
        "Daily active users are down 20% since 2026-11-01 (6 weeks): 16.0 vs 20.0 a day."
    ]
    # Each of the four weeks ending that day falls short of 20 by less than 40%.
    assert [day for day, result in days.items() if result.reasons][-1] == settled + timedelta(
        days=23
    )
    assert days[settled + timedelta(weeks=10)].reasons == ()


def test_a_drop_still_beyond_the_threshold_stays_flagged_however_long_it_lasts() -> None:
    fell = LAST_DAY - timedelta(weeks=3)
    days = daily_run(lambda day: 20 if day < fell else 11, fell, LAST_DAY + timedelta(weeks=10))
    assert texts(days[LAST_DAY + timedelta(weeks=10)]) == [
        "Daily active users are down 45% since 2026-11-01 (13 weeks): 11.0 vs 20.0 a day."
    ]


def test_a_slow_decline_that_settles_short_of_the_threshold_clears_after_settled_days() -> None:
    # 3% a week for 13 weeks (flagged), then flat at 16 of 20: no longer a 20% decline, and
    # short of the 85% recovery. It clears once every week of the last 28 days stays there.
    started = LAST_DAY - timedelta(weeks=13)

    def level(day: date) -> float:
        return 16 if day > LAST_DAY else 20 * (1 - 0.03 * max(0, (day - started).days) / 7)

    days = daily_run(level, LAST_DAY, LAST_DAY + timedelta(weeks=8))
    assert [r.code for r in days[LAST_DAY + timedelta(days=27)].reasons] == ["usage_decline"]
    assert [day for day, result in days.items() if result.reasons][-1] == LAST_DAY + timedelta(
        days=27
    )


def test_the_days_before_a_drop_began_do_not_count_as_settled() -> None:
    # A 45% drop eight days old whose last week was a noisy 35% short (the fresh measure no
    # longer sees it): the weeks at 20 before it are no level the account has settled at.
    fell = LAST_DAY - timedelta(days=7)
    values = [20] * 40 + [8] + [13] * 7
    kept = _Anchor(since=fell, baseline=20.0, profile=(20.0,) * 7)
    assert not kept.settled(values, LAST_DAY, days=28, window=7, pct=40, z=3)
    # Four weeks at 15 after it began are settled (25% short: under 40% beyond count noise);
    # four at 13 are not (35% short, within noise of 40% at this size).
    since = LAST_DAY - timedelta(days=30)
    assert _Anchor(since, 20.0, (20.0,) * 7).settled(
        [20] * 20 + [15] * 31, LAST_DAY, days=28, window=7, pct=40, z=3
    )
    assert not _Anchor(since, 20.0, (20.0,) * 7).settled(
        [20] * 20 + [13] * 31, LAST_DAY, days=28, window=7, pct=40, z=3
    )
