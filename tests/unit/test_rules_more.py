from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from integration.accounts import AccountState, UsageHistory
from integration.config import DecisionMakerRule, InactivityRule, UtilizationRule
from integration.reasons import RiskLevel
from integration.rules_more import inactivity, license_utilization, new_decision_maker
from integration.signals import ChangeType, JobChanged

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
    from integration.config import RiskConfig
    from integration.risk import assess

    idle = account(last_active=NOW - timedelta(days=16))
    renewing = replace(idle, facts={"renewal_date": "2027-01-15"})
    far = replace(idle, facts={"renewal_date": "2027-09-01"})
    result = assess(renewing, RiskConfig(), NOW)
    assert result.level is RiskLevel.HIGH  # inactivity alone is medium
    assert result.reasons[-1].text == (
        "The renewal is on 2027-01-15, 53 days away, with the risks above open."
    )
    assert assess(far, RiskConfig(), NOW).level is RiskLevel.MEDIUM


def test_a_healthy_account_renewing_soon_is_not_flagged() -> None:
    from integration.config import RiskConfig
    from integration.risk import assess

    healthy = replace(account(active_users_30d=18), facts={"renewal_date": "2026-12-01"})
    assert assess(healthy, RiskConfig(), NOW).reasons == ()


def test_a_segment_uses_its_own_thresholds() -> None:
    from integration.config import RiskConfig
    from integration.risk import assess

    rules = RiskConfig(segments={"enterprise": {"license_utilization": {"below_pct": 90}}})
    in_use = account(active_users_30d=16)  # 80% of 20 seats
    assert assess(in_use, rules, NOW).reasons == ()
    enterprise = replace(in_use, facts={"segment": "enterprise"})
    assert [r.code for r in assess(enterprise, rules, NOW).reasons] == ["license_utilization"]


def test_a_segment_override_with_a_wrong_key_is_refused() -> None:
    from pydantic import ValidationError

    from integration.config import RiskConfig

    with pytest.raises(ValidationError, match=r"segments\.enterprise\.usage_drop\.drop_pc"):
        RiskConfig(segments={"enterprise": {"usage_drop": {"drop_pc": 30}}})
