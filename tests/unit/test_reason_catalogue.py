"""The reason catalogue against the rules themselves: every rule is run on the accounts the rule
tests build, through each of its branches (a new drop and one held against the level before
it), and what the reasons carry must be exactly what the catalogue says, so a rule that gains a
detail, or a new code, fails here until the catalogue (and the templates' checks) know it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from integration.config.schema import (
    AdoptionRule,
    CsatRule,
    KeyFeatureDeclineRule,
    OnboardingRule,
    OpenTicketsRule,
    RiskConfig,
    TicketSpikeRule,
    UtilizationGrowthRule,
)
from integration.risk.assess import NOT_RISK, RULES, assess
from integration.risk.catalogue import REASONS
from integration.risk.reasons import Reason
from integration.risk.renewal import renewal_near
from integration.signals.accounts import AccountState
from integration.signals.events import ChangeType
from tests.unit import test_risk, test_rules_more, test_rules_voice, test_usage_declines

NOW = test_risk.NOW
DEFAULTS = RiskConfig()
FEATURE = "reports_created"


def held(state: AccountState, values_name: str, drop_from: int = 10) -> AccountState:
    """`state` with an open flag raised ten weeks ago at `drop_from` a day: the first-detection
    measure no longer sees the drop (it slid into the normal), the level before it still does."""
    since = state.usage.last_day - timedelta(weeks=10)
    previous = {"since": since.isoformat(), "baseline": float(drop_from), "profile": [10.0] * 7}
    return replace(state, previous_reasons={values_name: previous})


def _down_for_ten_weeks() -> AccountState:
    return test_risk.state([10] * 56 + [4] * 70)


def _logins(values: tuple[int, ...]) -> AccountState:
    steady = test_risk.history([10] * len(values))
    return AccountState("acct-1", replace(steady, daily_metrics={"logins": values}))


def _feature(values: tuple[int, ...]) -> AccountState:
    steady = test_risk.history([10] * len(values))
    return AccountState("acct-1", replace(steady, daily_metrics={FEATURE: values}))


def _fading() -> AccountState:
    started = test_usage_declines.LAST_DAY - timedelta(weeks=13)

    def level(day: date) -> float:
        return 20 * (1 - 0.03 * max(0, (day - started).days) / 7)

    return test_usage_declines.account(test_usage_declines.LAST_DAY, level)


def _decline_held() -> AccountState:
    low = test_usage_declines.account(test_usage_declines.LAST_DAY, lambda day: 10.0)
    since = low.usage.last_day - timedelta(weeks=12)
    previous = {"since": since.isoformat(), "baseline": 20.0, "profile": [20.0] * 7}
    return replace(low, previous_reasons={"usage_decline": previous})


def _joined() -> AccountState:
    champion = test_risk.person(
        previous_account_id="acct-0", current_account_id="acct-1", previous_company_name="Initech"
    )
    return test_risk.people_state(champion)


def _decision_maker() -> AccountState:
    arrival = test_rules_more.person("VP Operations", ChangeType.PROMOTION)
    return AccountState("acme", test_rules_more.USAGE, (arrival,))


KEY_FEATURES = KeyFeatureDeclineRule(key_features=(FEATURE,))
# (rule name in RULES, the account, the rule's settings): every branch of every rule.
CASES: list[tuple[str, Callable[[], AccountState], Any]] = [
    ("usage_drop", lambda: test_risk.state([10] * 42 + [4] * 7), DEFAULTS.usage_drop),
    ("usage_drop", lambda: held(_down_for_ten_weeks(), "usage_drop"), DEFAULTS.usage_drop),
    (
        "login_frequency_drop",
        lambda: _logins((30,) * 56 + (12,) * 7),
        DEFAULTS.login_frequency_drop,
    ),
    (
        "login_frequency_drop",
        lambda: held(_logins((10,) * 56 + (4,) * 70), "login_frequency_drop"),
        DEFAULTS.login_frequency_drop,
    ),
    ("slow_decline", _fading, DEFAULTS.slow_decline),
    ("slow_decline", _decline_held, DEFAULTS.slow_decline),
    ("champion_left", lambda: test_risk.people_state(test_risk.person()), DEFAULTS.champion_left),
    (
        "inactivity",
        lambda: test_rules_more.account(last_active=NOW - timedelta(days=16)),
        DEFAULTS.inactivity,
    ),
    (
        "license_utilization",
        lambda: test_rules_more.account(active_users_30d=9),
        DEFAULTS.license_utilization,
    ),
    ("champion_joined", _joined, DEFAULTS.champion_joined),
    ("new_decision_maker", _decision_maker, DEFAULTS.new_decision_maker),
    (
        "nps_detractor",
        lambda: test_rules_more.with_metrics(
            nps_responses=(0,) * 50 + (1, 2, 1), nps_detractors=(0,) * 50 + (1, 1, 0)
        ),
        DEFAULTS.nps_detractor,
    ),
    (
        "support_ticket_spike",
        lambda: test_rules_more.with_metrics(
            tickets_opened=(0, 1, 0, 0, 1, 0, 0) * 8 + (2, 1, 3, 0, 1, 2, 0)
        ),
        TicketSpikeRule(),
    ),
    (
        "long_open_tickets",
        lambda: test_rules_voice.account(open_tickets=test_rules_voice.opened(40, 20, 15, 3)),
        OpenTicketsRule(),
    ),
    ("csat_low", lambda: test_rules_voice.csat(5, 3), CsatRule()),
    (
        "utilization_growth",
        lambda: test_rules_voice.account(active_users_30d=14, active_users_30d_before=11),
        UtilizationGrowthRule(),
    ),
    (
        "utilization_growth",
        lambda: test_rules_voice.account(
            daily_active_users=(9,) * 30 + (14,) * 30, active_users_30d=20
        ),
        UtilizationGrowthRule(),
    ),
    (
        "key_feature_not_adopted",
        lambda: test_rules_more.with_metrics(
            reports_created=(1,) * 60, dashboards_shared=(1,) * 20 + (0,) * 40
        ),
        AdoptionRule(key_features=("reports_created", "dashboards_shared")),
    ),
    ("key_feature_decline", lambda: _feature((12,) * 56 + (6,) * 7), KEY_FEATURES),
    (
        "key_feature_decline",
        lambda: held(_feature((10,) * 56 + (4,) * 70), f"key_feature_decline:{FEATURE}"),
        KEY_FEATURES,
    ),
    (
        "onboarding_stalled",
        lambda: test_rules_more.with_metrics(
            integrations_connected=(0,) * 95, reports_created=(0,) * 90 + (1,) * 5
        ),
        OnboardingRule(milestones=("integrations_connected", "reports_created")),
    ),
    (
        "low_stickiness",
        lambda: test_rules_more.account(daily_active_users=(2,) * 28, active_users_30d=20),
        DEFAULTS.low_stickiness,
    ),
]


def _renewal() -> Reason:
    idle = test_rules_more.account(last_active=NOW - timedelta(days=16))
    reason = renewal_near(
        replace(idle, facts={"renewal_date": "2027-01-15"}), DEFAULTS.renewal, NOW
    )
    assert reason is not None
    return reason


def _generated() -> list[tuple[str, Reason]]:
    found = [
        (name, reason) for name, build, rule in CASES for reason in RULES[name](build(), rule, NOW)
    ]
    return [*found, ("renewal", _renewal())]


@pytest.mark.parametrize(("name", "build", "rule"), CASES)
def test_each_case_raises_the_reason_it_is_there_for(
    name: str, build: Callable[[], AccountState], rule: Any
) -> None:
    assert RULES[name](build(), rule, NOW), f"{name}: the case raised nothing"


def test_every_rule_is_run_and_every_code_it_returns_is_catalogued() -> None:
    assert {name for name, _, _ in CASES} == set(RULES)
    generated = _generated()
    codes = {reason.code for _, reason in generated}
    assert codes == set(REASONS), "a code the rules return is not catalogued, or the reverse"
    assert len(REASONS) == 18


def test_each_codes_details_are_exactly_the_keys_its_branches_can_hold() -> None:
    seen: dict[str, set[str]] = {}
    for _, reason in _generated():
        keys = set(reason.details)
        extra = keys - REASONS[reason.code].details
        assert not extra, f"{reason.code} carries uncatalogued details {sorted(extra)}"
        seen.setdefault(reason.code, set()).update(keys)
    for code, keys in seen.items():
        assert keys == REASONS[code].details, f"{code}: catalogued but never carried"


def test_people_reasons_name_a_person_with_an_email_and_no_other_does() -> None:
    for _, reason in _generated():
        info = REASONS[reason.code]
        assert info.names_person == ("email" in reason.details), reason.code
        if info.names_person:
            assert reason.details["email"]


def test_opportunities_are_exactly_what_assess_does_not_count_as_risk() -> None:
    assert {code for code, info in REASONS.items() if info.opportunity} == NOT_RISK


def test_every_metric_is_a_series_the_history_holds() -> None:
    from integration.config.schema import BUILT_IN_METRICS

    for info in REASONS.values():
        assert info.metric is None or info.metric in BUILT_IN_METRICS, info.code
        assert info.metric_detail is None or info.metric_detail in info.details, info.code
        assert info.code == next(code for code, i in REASONS.items() if i is info)


def test_an_assessment_carries_a_trend_for_each_reason_with_a_metric() -> None:
    rules = RiskConfig(key_feature_not_adopted=AdoptionRule(key_features=(FEATURE,)))
    state = replace(
        _feature((12,) * 56 + (6,) * 7),
        people=(test_risk.person(),),
    )
    result = assess(state, rules, NOW)
    assert sorted(result.reason_keys) == [
        "champion_left:priya@globex.example",
        f"key_feature_decline:{FEATURE}",
    ]
    assert list(result.trends) == [f"key_feature_decline:{FEATURE}"]
    assert result.trends[f"key_feature_decline:{FEATURE}"].values == (84.0,) * 7 + (42.0,)
