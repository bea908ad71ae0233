"""The values we write on CRM accounts: what each mapped field holds, and its value now.

`FIELD_SPECS` tells `integration provision` which property type to create for each field, and
tells an admin what the field means (it becomes the property's description in the CRM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from integration.config.schema import FieldMap
from integration.risk.assess import RiskAssessment, reasons_text
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


def field_values(assessment: RiskAssessment, fields: FieldMap) -> dict[str, FieldValue]:
    """CRM field name -> value, for the fields the admin mapped."""
    values: dict[str, FieldValue] = {
        "risk_level": assessment.level.value,
        "risk_reasons": reasons_text(assessment.reasons),
        "usage_trend_pct": assessment.usage_trend_pct,
        "license_utilization_pct": assessment.license_utilization_pct,
        "last_active_date": (
            assessment.last_active_date.isoformat() if assessment.last_active_date else None
        ),
    }
    mapped = fields.model_dump()
    return {mapped[name]: value for name, value in values.items() if mapped[name]}
