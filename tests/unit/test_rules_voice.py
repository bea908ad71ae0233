"""Long-open tickets, CSAT and the utilization expansion signal: pure rules, edge cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from integration.config.schema import CsatRule, OpenTicketsRule, RiskConfig, UtilizationGrowthRule
from integration.risk.adoption import utilization_growth
from integration.risk.assess import assess
from integration.risk.reasons import RiskLevel
from integration.risk.support import csat_low, long_open_tickets
from integration.signals.accounts import AccountState, UsageHistory

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
USAGE = UsageHistory(
    "acme",
    date(2026, 11, 22),
    (5,) * 60,
    (5,) * 60,
    date(2026, 1, 1),
    20,
    14,
    NOW,
    ticket_closings_since=NOW - timedelta(days=365),
)


def account(**usage: object) -> AccountState:
    return AccountState("acme", replace(USAGE, **usage))  # type: ignore[arg-type]


def opened(*days_ago: float) -> tuple[datetime, ...]:
    return tuple(sorted(NOW - timedelta(days=d) for d in days_ago))


def test_a_ticket_open_past_the_limit_is_named_with_its_age() -> None:
    [reason] = long_open_tickets(account(open_tickets=opened(16, 2)), OpenTicketsRule(), NOW)
    assert reason.text == "A support ticket has been open for more than 14 days (16 days)."
    assert reason.severity is RiskLevel.LOW


def test_several_long_open_tickets_are_counted_and_weigh_more() -> None:
    state = account(open_tickets=opened(40, 20, 15, 3))
    [reason] = long_open_tickets(state, OpenTicketsRule(), NOW)
    assert reason.text == (
        "3 support tickets have been open for more than 14 days (the oldest for 40 days)."
    )
    assert reason.severity is RiskLevel.MEDIUM
    assert reason.details["observed"] == 3


def test_open_tickets_say_nothing_until_closing_events_arrive() -> None:
    state = account(open_tickets=opened(40, 20, 15), ticket_closings_since=None)
    assert long_open_tickets(state, OpenTicketsRule(), NOW) == []


def test_tickets_opened_before_closings_began_to_arrive_are_not_counted() -> None:
    state = account(open_tickets=opened(40, 20), ticket_closings_since=NOW - timedelta(days=30))
    [reason] = long_open_tickets(state, OpenTicketsRule(), NOW)
    assert reason.details["observed"] == 1  # the ticket from 20 days ago


def test_young_tickets_or_fewer_than_the_minimum_are_not_a_reason() -> None:
    assert long_open_tickets(account(open_tickets=opened(13, 1)), OpenTicketsRule(), NOW) == []
    rule = OpenTicketsRule(min_tickets=2)
    assert long_open_tickets(account(open_tickets=opened(20, 1)), rule, NOW) == []


def csat(responses: int, satisfied: int) -> AccountState:
    return account(
        daily_metrics={
            "csat_responses": (0,) * 50 + (responses,) + (0,) * 9,
            "csat_satisfied": (0,) * 50 + (satisfied,) + (0,) * 9,
        }
    )


def test_mostly_unsatisfied_csat_answers_are_a_reason() -> None:
    [reason] = csat_low(csat(5, 3), CsatRule(), NOW)
    assert reason.text == (
        "Only 3 of 5 CSAT responses in the last 30 days were satisfied (60%, below 70%)."
    )
    assert reason.severity is RiskLevel.LOW
    [bad] = csat_low(csat(4, 1), CsatRule(), NOW)
    assert bad.severity is RiskLevel.MEDIUM


@pytest.mark.parametrize(("responses", "satisfied"), [(2, 0), (10, 7), (0, 0)])
def test_few_or_satisfied_csat_answers_are_not_a_reason(responses: int, satisfied: int) -> None:
    assert csat_low(csat(responses, satisfied), CsatRule(), NOW) == []


def test_csat_older_than_the_window_is_not_counted() -> None:
    assert csat_low(csat(5, 0), CsatRule(days=7), NOW) == []


def test_utilization_up_ten_points_in_30_days_is_an_expansion_signal_not_a_risk() -> None:
    state = account(active_users_30d=14, active_users_30d_before=11)  # 55% -> 70% of 20 seats
    [reason] = utilization_growth(state, UtilizationGrowthRule(), NOW)
    assert reason.text == (
        "License utilization rose from 55% to 70% in 30 days (14 of 20 seats in use): "
        "room to expand."
    )
    assessment = assess(state, RiskConfig(), NOW)
    assert "utilization_growth" in assessment.reason_keys
    assert assessment.level is RiskLevel.NONE
    assert assessment.score == 0


@pytest.mark.parametrize(
    ("seats", "before", "now"), [(20, 12, 13), (20, None, 20), (4, 0, 4), (None, 1, 9)]
)
def test_small_unknown_or_slight_changes_are_no_expansion_signal(
    seats: int | None, before: int | None, now: int
) -> None:
    state = account(seats=seats, active_users_30d=now, active_users_30d_before=before)
    assert utilization_growth(state, UtilizationGrowthRule(), NOW) == []


def test_without_a_month_ago_figure_the_busiest_days_are_compared() -> None:
    imported = account(daily_active_users=(9,) * 30 + (14,) * 30, active_users_30d=20)
    [reason] = utilization_growth(imported, UtilizationGrowthRule(), NOW)
    assert reason.text == (
        "License utilization rose from 45% to 70% in 30 days (14 of 20 seats in use): "
        "room to expand."
    )
    assert reason.details["measure"] == "users on the busiest day"
    brand_new = account(daily_active_users=(0,) * 30 + (14,) * 30, active_users_30d=20)
    assert utilization_growth(brand_new, UtilizationGrowthRule(), NOW) == []  # onboarding


def test_the_crms_purchased_seats_win_over_the_seats_usage_reported() -> None:
    from integration.config.schema import UtilizationRule
    from integration.risk.adoption import license_utilization

    state = replace(account(active_users_30d=14), facts={"seats": "40"})  # usage said 20
    [reason] = license_utilization(state, UtilizationRule(), NOW)
    assert reason.text == (
        "Only 14 of 40 licensed seats were used in the last 30 days (35%, below 60%)."
    )
    unset = replace(account(active_users_30d=14), facts={"seats": ""})
    assert license_utilization(unset, UtilizationRule(), NOW) == []  # 14 of 20: 70%


@pytest.mark.parametrize("raw", ["2026-08-01", "2026-08-01T00:00:00Z", "1785542400000"])
def test_onboarding_counts_from_the_crms_start_date_in_any_of_its_formats(raw: str) -> None:
    from integration.config.schema import OnboardingRule
    from integration.risk.adoption import onboarding_stalled

    usage = {"first_day": date(2026, 10, 1), "daily_metrics": {"integrations": (0,) * 60}}
    state = replace(account(**usage), facts={"onboarding_start": raw})
    [reason] = onboarding_stalled(state, OnboardingRule(milestones=("integrations",)), NOW)
    assert reason.details["age_days"] == 114  # from 2026-08-01, not from the first usage
    started_later = replace(account(**usage), facts={})  # 53 days since the first usage
    assert (
        onboarding_stalled(started_later, OnboardingRule(milestones=("integrations",)), NOW) == []
    )
