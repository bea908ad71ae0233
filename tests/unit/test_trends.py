"""Trends for the rep: eight whole weeks of the metric behind a reason, and its sparkline."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from integration.config.schema import RiskConfig
from integration.risk.assess import assess, assessment_from_json, assessment_to_json
from integration.risk.reasons import Reason, RiskLevel
from integration.risk.trends import Trend, reason_trend, sparkline, weekly_series
from integration.signals.accounts import AccountState
from tests.unit import test_risk, test_rules_more

NOW = test_risk.NOW


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ([], ""),
        ([0, 1, 2, 3, 4, 5, 6, 7], "▁▂▃▄▅▆▇█"),
        ([10, 10, 10, 10, 10, 10, 4, 4], "██████▁▁"),
        ([5, 5, 5], "▄▄▄"),
        ([0, 0, 0, 0], "▁▁▁▁"),  # nothing at all: at the bottom, not steady use
        ([0, 0, 3.5, 7], "▁▁▅█"),
        ([2.5], "▄"),
        ([-1, 1], "▁█"),
    ],
)
def test_the_sparkline_scales_from_the_lowest_to_the_highest(
    values: list[float], line: str
) -> None:
    assert sparkline(values) == line


def test_a_sparkline_is_one_plain_line_of_block_characters() -> None:
    line = sparkline([3.2, 9.9, 0, 41.5, 12, 12, 7.25, 1e-9])
    assert len(line) == 8
    assert set(line) <= set("▁▂▃▄▅▆▇█")
    assert "\n" not in line


def test_active_users_are_the_average_day_of_each_of_the_last_eight_whole_weeks() -> None:
    # Ten weeks: the oldest two fall outside; the last week (ending on the judged day) is at 4.
    daily = [99] * 14 + [10] * 42 + [3, 10, 10, 10, 10, 10, 10] + [4] * 7
    usage = test_risk.history(daily)
    assert weekly_series(usage, "active_users") == (10.0,) * 6 + (9.0, 4.0)


def test_counts_are_each_weeks_total_and_the_last_week_ends_on_the_judged_day() -> None:
    tickets = (0,) * 7 + (1,) * 49 + (0, 0, 0, 0, 0, 0, 5)
    usage = test_rules_more.with_metrics(tickets_opened=tickets).usage
    assert weekly_series(usage, "tickets_opened") == (7.0,) * 7 + (5.0,)
    assert weekly_series(usage, "tickets_opened", weeks=2) == (7.0, 5.0)


def test_several_metrics_add_up_week_by_week() -> None:
    usage = test_rules_more.with_metrics(a=(1,) * 56, b=(0,) * 49 + (2,) * 7).usage
    assert weekly_series(usage, ["a", "b"]) == (7.0,) * 7 + (21.0,)


def test_a_young_account_shows_only_the_whole_weeks_it_has_lived() -> None:
    young = test_risk.history([0] * 40 + [6] * 23, history_days=23)  # three whole weeks
    assert weekly_series(young, "active_users") == (6.0, 6.0, 6.0)
    assert weekly_series(test_risk.history([5] * 6), "active_users") == ()


def test_a_metric_never_counted_reads_as_zeros() -> None:
    usage = test_risk.history([5] * 56)
    assert weekly_series(usage, "nps_detractors") == (0.0,) * 8


def test_reasons_without_a_metric_have_no_trend() -> None:
    usage = test_risk.history([5] * 56)
    renewal = Reason("renewal_near", "renewal_near", "", RiskLevel.LOW, {})
    left = Reason("champion_left", "champion_left:a@b.example", "", RiskLevel.HIGH, {})
    unknown = Reason("from_a_newer_release", "x", "", RiskLevel.LOW, {})
    assert [reason_trend(r, usage) for r in (renewal, left, unknown)] == [None, None, None]


def test_unused_key_features_are_drawn_together_by_name() -> None:
    usage = test_rules_more.with_metrics(
        reports_created=(1,) * 63, dashboards_shared=(1,) * 21 + (0,) * 42
    ).usage
    unused = Reason(
        "key_feature_not_adopted",
        "key_feature_not_adopted",
        "",
        RiskLevel.LOW,
        {"unused": ["dashboards_shared"], "window_days": 30},
    )
    trend = reason_trend(unused, usage)
    assert trend == Trend("Use of dashboards shared a week", (7.0, 7.0) + (0.0,) * 6)
    assert trend is not None
    assert trend.sparkline == "██▁▁▁▁▁▁"


def dropped() -> AccountState:
    return test_risk.state([10] * 42 + [4] * 7, seats=20, active_30d=11)


def test_assess_draws_the_trend_behind_each_reason_by_its_key() -> None:
    result = assess(dropped(), RiskConfig(), NOW)
    assert [r.key for r in result.reasons] == ["usage_drop", "license_utilization"]
    drop = result.trends["usage_drop"]
    assert drop == Trend("Daily active users (weekly average)", (10.0,) * 6 + (4.0,))
    assert drop.sparkline == "██████▁"
    assert set(result.trends) == {"usage_drop", "license_utilization"}


def test_trends_round_trip_through_the_stored_json() -> None:
    result = assess(dropped(), RiskConfig(), NOW)
    stored = json.loads(json.dumps(assessment_to_json(result)))
    assert stored["trends"]["usage_drop"] == {
        "label": "Daily active users (weekly average)",
        "values": [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 4.0],
    }
    assert assessment_from_json(stored) == result


def test_an_assessment_stored_by_the_previous_release_loads_without_trends() -> None:
    result = assess(dropped(), RiskConfig(), NOW)
    old = assessment_to_json(result)
    del old["trends"]
    assert assessment_from_json(old) == replace(result, trends={})


def test_a_folded_reason_has_no_trend_of_its_own() -> None:
    usage = test_risk.history([10] * 56 + [4] * 7)
    logins = replace(usage, daily_metrics={"logins": (30,) * 56 + (12,) * 7})
    result = assess(AccountState("acct-1", logins), RiskConfig(), NOW)
    assert [r.code for r in result.reasons] == ["usage_drop"]
    assert list(result.trends) == ["usage_drop"]
    assert result.trends["usage_drop"].values[-1] == 4.0
    assert len(result.trends["usage_drop"].values) == 8
    assert NOW.date() - timedelta(days=1) == usage.last_day
