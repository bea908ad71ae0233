"""Every reason code a rule can return, with what a playbook may rely on: the keys its details
can hold (template variables), whether it names a person (a sequence can enroll them), the
daily metric behind it (the trend a task body draws), and whether it is an opportunity.

`integration validate` reads this to refuse a template naming a detail no reason carries, or a
sequence on a playbook whose reason names nobody. tests/unit/test_reason_catalogue.py runs every
rule and checks its details against this table, so the two cannot drift apart.

Metrics are the daily series of `UsageHistory` ("active_users" is `daily_active_users`, the
others `daily_metrics[name]`). A key feature's series is per feature: those codes have
`metric=None` and `metric_detail` names the details key holding the feature name(s)
("feature" for key_feature_decline, "unused" for key_feature_not_adopted); the trend is then
keyed by the reason's key like any other (`key_feature_decline:reports_created`).
"""

from __future__ import annotations

from dataclasses import dataclass

# The keys of every usage-style drop measured by usage.metric_drop (a new drop and one held
# against the level before it); a slow decline says the same and the weeks it spans.
_DROP = frozenset(
    {
        "metric",
        "observed",
        "baseline",
        "drop_pct",
        "window_days",
        "days_below",
        "days_down",
        "seasonal",
        "since",
        "profile",
    }
)
_PERSON = frozenset({"person", "email", "new_title", "source"})


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """What a reason code promises: its title, the daily metric behind it, whether its details
    name a person (with their email), every key its details can hold, and whether it is good
    news (assess.NOT_RISK) rather than risk."""

    code: str
    title: str
    metric: str | None
    names_person: bool
    details: frozenset[str]
    opportunity: bool
    # For a per-feature series: the details key naming the feature (a name or a list of names).
    metric_detail: str | None = None


def _info(
    code: str,
    title: str,
    metric: str | None,
    details: frozenset[str] | set[str],
    *,
    names_person: bool = False,
    opportunity: bool = False,
    metric_detail: str | None = None,
) -> ReasonInfo:
    return ReasonInfo(
        code, title, metric, names_person, frozenset(details), opportunity, metric_detail
    )


_ALL = (
    _info("usage_drop", "Usage drop", "active_users", _DROP),
    _info("login_frequency_drop", "Login frequency drop", "logins", _DROP),
    _info(
        "usage_decline",
        "Slow usage decline",
        "active_users",
        (_DROP - {"days_below", "days_down"}) | {"weeks"},
    ),
    _info(
        "champion_left",
        "Champion left",
        None,
        _PERSON | {"previous_title", "new_company"},
        names_person=True,
    ),
    _info("inactivity", "Inactivity", "active_users", {"metric", "observed", "threshold"}),
    _info(
        "license_utilization",
        "Low license utilization",
        "active_users",
        {"metric", "observed", "threshold", "seats", "active_users_30d"},
    ),
    _info(
        "champion_joined",
        "Past champion joined",
        None,
        _PERSON | {"from"},
        names_person=True,
        opportunity=True,
    ),
    _info(
        "new_decision_maker",
        "New decision-maker",
        None,
        _PERSON,
        names_person=True,
        opportunity=True,
    ),
    _info(
        "nps_detractor",
        "NPS detractor",
        "nps_detractors",
        {"metric", "observed", "responses", "window_days"},
    ),
    _info(
        "support_ticket_spike",
        "Support ticket spike",
        "tickets_opened",
        {"metric", "observed", "baseline"},
    ),
    _info(
        "long_open_tickets",
        "Long-open support tickets",
        "tickets_opened",
        {"metric", "observed", "oldest_days", "threshold_days"},
    ),
    _info(
        "csat_low",
        "Low CSAT",
        "csat_responses",
        {"metric", "observed", "threshold", "responses", "window_days"},
    ),
    _info(
        "utilization_growth",
        "License utilization growth",
        "active_users",
        {"metric", "measure", "observed", "baseline", "threshold_points", "window_days"},
        opportunity=True,
    ),
    _info(
        "key_feature_not_adopted",
        "Key feature not adopted",
        None,
        {"metric", "unused", "window_days"},
        metric_detail="unused",
    ),
    _info(
        "key_feature_decline",
        "Key feature decline",
        None,
        _DROP | {"feature"},
        metric_detail="feature",
    ),
    # The missing milestones are at zero by definition: a line of them would say nothing.
    _info("onboarding_stalled", "Onboarding stalled", None, {"metric", "missing", "age_days"}),
    _info("low_stickiness", "Low stickiness", "active_users", {"metric", "observed", "threshold"}),
    _info(
        "renewal_near",
        "Renewal near with open risk",
        None,
        {"renewal_date", "days_to_renewal", "threshold"},
    ),
)

REASONS: dict[str, ReasonInfo] = {info.code: info for info in _ALL}
