from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from integration.config.schema import DecisionMakerRule, InactivityRule, UtilizationRule
from integration.risk.adoption import license_utilization
from integration.risk.people import new_decision_maker
from integration.risk.reasons import RiskLevel
from integration.risk.usage import inactivity
from integration.signals.accounts import AccountState, UsageHistory
from integration.signals.events import ChangeType, JobChanged

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
USAGE = UsageHistory(
    "acme",
    date(2026, 11, 22),
    (5,) * 7,
    (5,) * 7,
    date(2026, 1, 1),
    20,
    14,
    NOW - timedelta(days=2),
)


def account(**usage: object) -> AccountState:
    return AccountState("acme", replace(USAGE, **usage))  # type: ignore[arg-type]


def test_an_account_nobody_used_for_two_weeks_is_flagged_with_the_date() -> None:
    [reason] = inactivity(account(last_active=NOW - timedelta(days=16)), InactivityRule(), NOW)
    assert reason.text == (
        "No one at the account has used the product for 16 days (last activity 2026-11-07)."
    )
    assert reason.severity is RiskLevel.MEDIUM
    [long] = inactivity(account(last_active=NOW - timedelta(days=30)), InactivityRule(), NOW)
    assert long.severity is RiskLevel.HIGH


@pytest.mark.parametrize("last_active", [None, NOW - timedelta(days=13)])
def test_recent_or_never_seen_accounts_are_not_inactive(last_active: datetime | None) -> None:
    assert inactivity(account(last_active=last_active), InactivityRule(), NOW) == []


def test_low_license_utilization_names_seats_and_share() -> None:
    [reason] = license_utilization(account(active_users_30d=9), UtilizationRule(), NOW)
    assert reason.text == (
        "Only 9 of 20 licensed seats were used in the last 30 days (45%, below 60%)."
    )


@pytest.mark.parametrize(("seats", "active"), [(20, 12), (3, 0), (None, 0)])
def test_utilization_stays_quiet_when_healthy_or_too_small_to_judge(
    seats: int | None, active: int
) -> None:
    assert (
        license_utilization(account(seats=seats, active_users_30d=active), UtilizationRule(), NOW)
        == []
    )


def person(
    title: str, kind: ChangeType = ChangeType.COMPANY_CHANGE, joined: str | None = "acme"
) -> JobChanged:
    return JobChanged(
        "e1",
        "clay",
        kind,
        NOW - timedelta(days=3),
        "kim@acme.example",
        "Kim Park",
        None,
        None,
        None,
        "Acme",
        "acme.example",
        title,
        None,
        False,
        current_account_id=joined,
    )


@pytest.mark.parametrize(
    ("title", "kind", "verb"),
    [
        ("VP Operations", ChangeType.COMPANY_CHANGE, "joined as"),
        ("Chief Data Officer", ChangeType.PROMOTION, "was promoted to"),
        ("Head of Analytics", ChangeType.COMPANY_CHANGE, "joined as"),
    ],
)
def test_a_new_decision_maker_is_a_reason_to_meet_them(
    title: str, kind: ChangeType, verb: str
) -> None:
    state = AccountState("acme", USAGE, (person(title, kind),))
    [reason] = new_decision_maker(state, DecisionMakerRule(), NOW)
    assert reason.text == (
        f"Kim Park {verb} {title} (reported by clay on 2026-11-20): a new decision-maker to meet."
    )


@pytest.mark.parametrize(
    ("signal", "why"),
    [
        (person("Analyst"), "not a buying title"),
        (person("VP Sales", joined="globex"), "joined another account"),
        (person("VP Sales", ChangeType.LEFT_COMPANY), "left, did not arrive"),
    ],
)
def test_other_arrivals_are_not_decision_makers(signal: JobChanged, why: str) -> None:
    assert (
        new_decision_maker(AccountState("acme", USAGE, (signal,)), DecisionMakerRule(), NOW) == []
    ), why


def test_risk_near_a_renewal_raises_the_level_and_says_when() -> None:
    from integration.config.schema import RiskConfig
    from integration.risk.assess import assess

    idle = account(last_active=NOW - timedelta(days=16))
    renewing = replace(idle, facts={"renewal_date": "2027-01-15"})
    far = replace(idle, facts={"renewal_date": "2027-09-01"})
    result = assess(renewing, RiskConfig(), NOW)
    assert result.level is RiskLevel.HIGH  # inactivity alone is medium
    assert result.reasons[-1].text == (
        "The renewal is on 2027-01-15, 53 days away, while other risks are open on the account."
    )
    assert assess(far, RiskConfig(), NOW).level is RiskLevel.MEDIUM


def test_a_healthy_account_renewing_soon_is_not_flagged() -> None:
    from integration.config.schema import RiskConfig
    from integration.risk.assess import assess

    healthy = replace(account(active_users_30d=18), facts={"renewal_date": "2026-12-01"})
    assert assess(healthy, RiskConfig(), NOW).reasons == ()


def test_a_segment_uses_its_own_thresholds() -> None:
    from integration.config.schema import RiskConfig
    from integration.risk.assess import assess

    rules = RiskConfig(segments={"enterprise": {"license_utilization": {"below_pct": 90}}})
    in_use = account(active_users_30d=16)  # 80% of 20 seats
    assert assess(in_use, rules, NOW).reasons == ()
    enterprise = replace(in_use, facts={"segment": "enterprise"})
    assert [r.code for r in assess(enterprise, rules, NOW).reasons] == ["license_utilization"]


def test_a_segment_override_with_a_wrong_key_is_refused() -> None:
    from pydantic import ValidationError

    from integration.config.schema import RiskConfig

    with pytest.raises(ValidationError, match=r"segments\.enterprise\.usage_drop\.drop_pc"):
        RiskConfig(segments={"enterprise": {"usage_drop": {"drop_pc": 30}}})


def with_metrics(**series: tuple[int, ...]) -> AccountState:
    days = max(len(v) for v in series.values())
    return account(
        daily_metrics=series,
        first_day=USAGE.last_day - timedelta(days=days - 1),
        daily_active_users=(5,) * days,
    )


def test_recent_nps_detractors_are_a_reason_with_the_count() -> None:
    from integration.config.schema import NpsRule
    from integration.risk.support import nps_detractor

    state = with_metrics(nps_responses=(0,) * 50 + (1, 2, 1), nps_detractors=(0,) * 50 + (1, 1, 0))
    [reason] = nps_detractor(state, NpsRule(), NOW)
    assert reason.text == (
        "2 of 4 NPS responses in the last 30 days were detractors (a score of 6 or less)."
    )
    assert reason.severity is RiskLevel.MEDIUM


def test_a_week_with_far_more_tickets_than_usual_is_a_spike() -> None:
    from integration.config.schema import TicketSpikeRule
    from integration.risk.support import support_ticket_spike

    usual = (0, 1, 0, 0, 1, 0, 0) * 8
    assert (
        support_ticket_spike(
            with_metrics(tickets_opened=usual + (0, 1, 0, 0, 1, 0, 0)), TicketSpikeRule(), NOW
        )
        == []
    )
    [reason] = support_ticket_spike(
        with_metrics(tickets_opened=usual + (2, 1, 3, 0, 1, 2, 0)), TicketSpikeRule(), NOW
    )
    assert reason.text == (
        "9 support tickets were opened in the last 7 days, against 2.0 a "
        "week over the 8 weeks before."
    )


def test_an_unused_key_feature_is_named() -> None:
    from integration.config.schema import AdoptionRule
    from integration.risk.adoption import key_feature_not_adopted

    rule = AdoptionRule(key_features=("reports_created", "dashboards_shared"))
    state = with_metrics(reports_created=(1,) * 60, dashboards_shared=(1,) * 20 + (0,) * 40)
    [reason] = key_feature_not_adopted(state, rule, NOW)
    assert reason.text == "No one used dashboards shared in the last 30 days."


def test_onboarding_milestones_missed_after_90_days_are_named_then_dropped() -> None:
    from integration.config.schema import OnboardingRule
    from integration.risk.adoption import onboarding_stalled

    rule = OnboardingRule(milestones=("integrations_connected", "reports_created"))
    at = {"integrations_connected": (0,) * 95, "reports_created": (0,) * 90 + (1,) * 5}
    [reason] = onboarding_stalled(with_metrics(**at), rule, NOW)
    assert reason.text == (
        "Onboarding stalled: 95 days in, the account has not reached "
        "integrations connected (expected within 90 days)."
    )
    early = {name: values[:60] for name, values in at.items()}
    assert onboarding_stalled(with_metrics(**early), rule, NOW) == []


def test_few_daily_users_out_of_many_monthly_ones_is_low_stickiness() -> None:
    from integration.config.schema import StickinessRule
    from integration.risk.usage import low_stickiness

    rare = account(daily_active_users=(2,) * 28, active_users_30d=20)
    [reason] = low_stickiness(rare, StickinessRule(), NOW)
    assert reason.text == (
        "On an average day only 10% of the 20 people active this month use the product (below 20%)."
    )
    assert (
        low_stickiness(
            account(daily_active_users=(8,) * 28, active_users_30d=20), StickinessRule(), NOW
        )
        == []
    )


def test_a_young_accounts_first_tickets_are_not_a_spike() -> None:
    from integration.config.schema import TicketSpikeRule
    from integration.risk.support import support_ticket_spike

    young = with_metrics(tickets_opened=(0,) * 49 + (1, 1, 1, 1, 1, 1, 1) + (2,) * 7)
    young = replace(
        young, usage=replace(young.usage, first_day=USAGE.last_day - timedelta(days=20))
    )
    assert support_ticket_spike(young, TicketSpikeRule(), NOW) == []
