from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from integration.config.schema import ChampionLeftRule, RiskConfig, UsageDropRule
from integration.risk.assess import assess
from integration.risk.people import champion_left
from integration.risk.reasons import RiskLevel
from integration.risk.usage import usage_drop
from integration.signals.accounts import AccountState, UsageHistory
from integration.signals.events import ChangeType, JobChanged

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
YESTERDAY = date(2026, 11, 22)
RULE = UsageDropRule()


def history(
    daily: list[int], seats: int | None = None, history_days: int | None = None, active_30d: int = 0
) -> UsageHistory:
    held = history_days if history_days is not None else len(daily)
    return UsageHistory(
        account_id="acct-1",
        last_day=YESTERDAY,
        daily_active_users=tuple(daily),
        daily_events=tuple(daily),
        first_day=YESTERDAY - timedelta(days=held - 1) if held else None,
        seats=seats,
        active_users_30d=active_30d,
        last_active=NOW - timedelta(hours=20),
    )


def state(daily: list[int], **kwargs: object) -> AccountState:
    return AccountState("acct-1", history(daily, **kwargs))  # type: ignore[arg-type]


def test_usage_drop_flags_a_fall_below_the_accounts_own_normal() -> None:
    reasons = usage_drop(state([10] * 42 + [4] * 7), RULE, NOW)
    assert [r.text for r in reasons] == [
        "Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) "
        "over the last 7 days."
    ]
    assert reasons[0].severity is RiskLevel.HIGH
    assert reasons[0].details["baseline"] == 10.0


def test_a_drop_just_over_the_threshold_is_medium() -> None:
    reasons = usage_drop(state([10] * 42 + [5] * 7), RULE, NOW)
    assert [r.severity for r in reasons] == [RiskLevel.MEDIUM]


@pytest.mark.parametrize(
    ("daily", "why"),
    [
        ([10] * 49, "steady usage"),
        ([10] * 42 + [7] * 7, "a 30% dip is under the 40% threshold"),
        ([0] * 42 + [0] * 7, "no usage at all cannot drop"),
        ([1] * 20 + [0] * 22 + [0] * 7, "a normal under one user a day is below the volume guard"),
        ([10] * 42 + [12] * 7, "growth"),
    ],
)
def test_usage_drop_stays_quiet(daily: list[int], why: str) -> None:
    assert usage_drop(state(daily), RULE, NOW) == [], why


def test_an_account_without_a_full_baseline_is_not_judged() -> None:
    # 30 days old: 23 days at ten users, then 7 at four. The 35 days the rule needs would start
    # before the account existed; counting those days as zeros would invent a 51% drop.
    young = [0] * 19 + [10] * 23 + [4] * 7
    assert usage_drop(state(young, history_days=30), RULE, NOW) == []
    assert len(usage_drop(state(young, history_days=49), RULE, NOW)) == 1  # the guard is the reason


def test_a_vacation_dip_in_a_three_seat_account_is_not_a_flag() -> None:
    two_of_three_away_for_a_week = [3] * 42 + [1] * 7
    assert usage_drop(state(two_of_three_away_for_a_week, seats=3), RULE, NOW) == []


def test_a_sustained_drop_in_a_three_seat_account_is_still_a_flag() -> None:
    down_for_three_weeks = [3] * 28 + [1] * 21
    reasons = usage_drop(state(down_for_three_weeks, seats=3), RULE, NOW)
    assert [r.text for r in reasons] == [
        "Daily active users fell 67% below their 4-week normal (1.0 vs 3.0 a day) "
        "over the last 21 days."
    ]


def person(**overrides: object) -> JobChanged:
    values: dict[str, object] = {
        "event_id": "evt-1",
        "source": "clay",
        "change_type": ChangeType.COMPANY_CHANGE,
        "detected_at": NOW - timedelta(days=2),
        "email": "priya@globex.example",
        "full_name": "Priya Natarajan",
        "previous_company_name": "Globex",
        "previous_company_domain": "globex.example",
        "previous_job_title": "Director of Ops",
        "current_company_name": "Umbrella Corp",
        "current_company_domain": "umbrella.example",
        "current_job_title": "VP Operations",
        "relationship_type": None,
        "is_champion": True,
        "previous_account_id": "acct-1",
    }
    return JobChanged(**(values | overrides))  # type: ignore[arg-type]


def people_state(*people: JobChanged) -> AccountState:
    return AccountState("acct-1", history([5] * 49), tuple(people))


def test_champion_leaving_is_a_high_risk_reason_naming_the_person() -> None:
    reasons = champion_left(people_state(person()), ChampionLeftRule(), NOW)
    assert [(r.key, r.severity, r.text) for r in reasons] == [
        (
            "champion_left:priya@globex.example",
            RiskLevel.HIGH,
            "Champion Priya Natarajan, Director of Ops, left the account for Umbrella Corp "
            "(reported by clay on 2026-11-21).",
        )
    ]


def test_relationship_type_from_the_config_marks_a_champion() -> None:
    labelled = person(is_champion=False, relationship_type="Champion")
    assert len(champion_left(people_state(labelled), ChampionLeftRule(), NOW)) == 1


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"is_champion": False}, "not a champion"),
        ({"change_type": ChangeType.PROMOTION}, "a promotion inside the account is not leaving"),
        ({"previous_account_id": "another"}, "left a different account"),
        ({"detected_at": NOW - timedelta(days=91)}, "older than remember_days"),
    ],
)
def test_champion_left_ignores(overrides: dict[str, object], why: str) -> None:
    assert champion_left(people_state(person(**overrides)), ChampionLeftRule(), NOW) == [], why


def test_assessment_combines_reasons_and_computes_the_crm_values() -> None:
    account = AccountState(
        "acct-1", history([10] * 42 + [4] * 7, seats=20, active_30d=11), (person(),)
    )
    result = assess(account, RiskConfig(), NOW)
    assert result.level is RiskLevel.HIGH
    assert [r.code for r in result.reasons] == [
        "usage_drop",
        "champion_left",
        "license_utilization",
    ]
    assert result.score == 100
    assert result.usage_trend_pct == -60.0
    assert result.license_utilization_pct == 55.0
    assert result.last_active_date == date(2026, 11, 22)


def test_disabled_rules_do_not_run() -> None:
    rules = RiskConfig(usage_drop=UsageDropRule(enabled=False))
    result = assess(state([10] * 42 + [4] * 7), rules, NOW)
    assert result.level is RiskLevel.NONE
    assert result.reasons == ()


def by_date(days: int, level: Callable[[date], float]) -> list[int]:
    """Daily active users for `days` days ending yesterday, from a function of the date."""
    first = YESTERDAY - timedelta(days=days - 1)
    return [round(level(first + timedelta(days=n))) for n in range(days)]


def weekdays(weekday: float, weekend: float) -> Callable[[date], float]:
    return lambda day: weekday if day.weekday() < 5 else weekend


def test_a_weekday_product_is_not_flagged_for_its_quiet_weekends() -> None:
    steady = by_date(63, weekdays(20, 2))
    assert usage_drop(state(steady), RULE, NOW) == []


def test_a_weekday_product_whose_weekdays_halve_is_flagged() -> None:
    normal, dropped = weekdays(20, 2), weekdays(9, 2)
    daily = by_date(63, lambda d: normal(d) if d <= YESTERDAY - timedelta(days=7) else dropped(d))
    [reason] = usage_drop(state(daily), RULE, NOW)
    assert reason.details["drop_pct"] == 52.9  # 49 users against 104 expected (5x20 + 2x2)


def test_a_decline_that_began_weeks_ago_is_measured_against_the_level_before_it() -> None:
    # Eight weeks at 10, three weeks easing to 7, then a week at 5: against the last four weeks
    # that is a 26% dip (no flag); against the normal before the decline it is 50%.
    daily = [10] * 56 + [7] * 21 + [5] * 7
    [reason] = usage_drop(state(daily), RULE, NOW)
    assert reason.details["baseline"] == 10.0
    assert reason.details["drop_pct"] == 50.0


def seasonal_year(dip_this_year: float) -> list[int]:
    """A tax-season style product: every year the same four weeks run at half, this year at
    `dip_this_year` of normal."""
    total = 364 + 84

    def level(day: date) -> float:
        back = (YESTERDAY - day).days
        in_dip_last_year = 364 <= back < 364 + 28
        in_dip_this_year = back < 28
        if in_dip_this_year:
            return 20 * dip_this_year
        return 10 if in_dip_last_year else 20

    return by_date(total, level)


def test_a_seasonal_dip_like_last_years_is_not_a_flag() -> None:
    assert usage_drop(state(seasonal_year(0.5)), RULE, NOW) == []
    no_seasons = RULE.model_copy(update={"seasonal": "no"})
    assert len(usage_drop(state(seasonal_year(0.5)), no_seasons, NOW)) == 1


def test_a_seasonal_product_that_also_declines_is_flagged_against_last_year() -> None:
    [reason] = usage_drop(state(seasonal_year(0.2)), RULE, NOW)
    assert reason.details["seasonal"] is True
    assert reason.text.startswith("Daily active users fell 60% below the same weeks last year")


def test_the_reason_says_how_long_usage_has_been_down() -> None:
    [reason] = usage_drop(state([10] * 56 + [4] * 10), RULE, NOW)
    assert reason.text == (
        "Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the last "
        "7 days, and every day for 10 days."
    )


def test_fewer_logins_from_the_same_people_is_a_login_frequency_drop() -> None:
    from integration.risk.usage import login_frequency_drop

    steady_users = history([10] * 56 + [10] * 7)
    logins = replace(steady_users, daily_metrics={"logins": (30,) * 56 + (12,) * 7})
    account = AccountState("acct-1", logins)
    assert usage_drop(account, RULE, NOW) == []
    [reason] = login_frequency_drop(account, RULE, NOW)
    assert reason.text == (
        "Daily logins fell 60% below their 4-week normal (12.0 vs 30.0 a day) over the last 7 days."
    )


def test_a_small_accounts_vacation_is_not_a_login_drop_either() -> None:
    from integration.risk.usage import login_frequency_drop

    # Three people logging in twice a day, two of them away for a week.
    people = replace(history([3] * 42 + [1] * 7), daily_metrics={"logins": (6,) * 42 + (2,) * 7})
    assert login_frequency_drop(AccountState("acct-1", people), RULE, NOW) == []


def test_a_collapse_is_flagged_even_if_the_same_weeks_last_year_were_an_outage() -> None:
    def level(day: date) -> float:
        back = (YESTERDAY - day).days
        if back < 7:
            return 0  # usage collapsed this week
        return 0 if 364 <= back < 371 else 30  # and the same week last year was an outage

    [reason] = usage_drop(state(by_date(364 + 84, level)), RULE, NOW)
    assert reason.details["seasonal"] is False
    assert reason.details["drop_pct"] == 100.0


def test_a_weekday_products_drop_streak_runs_through_its_weekends() -> None:
    normal, dropped = weekdays(20, 0), weekdays(4, 0)
    daily = by_date(70, lambda d: normal(d) if d <= YESTERDAY - timedelta(days=14) else dropped(d))
    [reason] = usage_drop(state(daily), RULE, NOW)
    assert reason.details["days_below"] == 10  # ten weekdays in two weeks
    assert reason.text.endswith(", and every day for 10 days.")


def test_good_news_alone_does_not_make_a_renewal_risky() -> None:
    from integration.config.schema import RiskConfig

    hire = person(
        change_type=ChangeType.PROMOTION,
        previous_account_id="acct-1",
        current_account_id="acct-1",
        current_job_title="VP Operations",
        is_champion=False,
    )
    near = AccountState(
        "acct-1",
        history([5] * 49),
        (hire,),
        {"renewal_date": (NOW + timedelta(days=30)).date().isoformat()},
    )
    result = assess(near, RiskConfig(), NOW)
    assert [r.code for r in result.reasons] == ["new_decision_maker"]
    assert result.level is RiskLevel.LOW
