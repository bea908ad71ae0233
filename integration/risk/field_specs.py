"""What each CRM field we write holds: its label, kind and meaning, for provisioning and checks.

Kept apart from the values (fields.py) so the adapters can read it without the rules behind the
values: it imports only the risk levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from integration.risk.reasons import RiskLevel

FieldValue = str | int | float | bool | None
FieldKind = Literal["enumeration", "text", "long_text", "number", "date"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    label: str
    kind: FieldKind
    description: str
    options: tuple[str, ...] = ()


FIELD_SPECS: dict[str, FieldSpec] = {
    "risk_level": FieldSpec(
        "Churn risk level",
        "enumeration",
        "The worst of the current churn-risk reasons, from product usage and people signals.",
        tuple(level.value for level in RiskLevel),
    ),
    "risk_reasons": FieldSpec(
        "Churn risk reasons",
        "long_text",
        "Why the account is at risk, one sentence per reason, with the numbers behind it.",
    ),
    "usage_trend_pct": FieldSpec(
        "Usage trend (%)",
        "number",
        "Daily active users over the last 7 days against the account's own normal, in percent.",
    ),
    "license_utilization_pct": FieldSpec(
        "License utilization (%)",
        "number",
        "Users active in the last 30 days as a share of the seats purchased.",
    ),
    "last_active_date": FieldSpec(
        "Last product activity", "date", "The last day anyone at the account used the product."
    ),
}
