"""The values we write on CRM accounts, from an assessment (what each field holds: field_specs)."""

from __future__ import annotations

from integration.config.schema import FieldMap
from integration.risk.assess import RiskAssessment, reasons_text
from integration.risk.field_specs import FieldValue


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
