"""`integration validate --online` for Salesforce: do the mapped fields exist, take writes, fit?

Reads the describe of Account, Contact and Task (three API calls) and lists every problem, so an
admin fixes field-level security or a wrong API name before the first write is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from adapters.salesforce.adapter import SalesforceCrm
from integration.config.schema import Config
from integration.risk.field_specs import FIELD_SPECS, FieldKind

# Salesforce field types that can hold each kind of value we write.
FITTING_TYPES: dict[FieldKind, frozenset[str]] = {
    "enumeration": frozenset({"picklist", "string"}),
    "text": frozenset({"string", "textarea"}),
    "long_text": frozenset({"textarea", "string"}),
    "number": frozenset({"double", "percent", "int", "currency"}),
    "date": frozenset({"date", "datetime"}),
}


@dataclass(frozen=True, slots=True)
class Wanted:
    sobject: str
    field: str
    purpose: str
    types: frozenset[str] | None = None
    # How we write it: Account fields are updated, Task fields are set when the task is created.
    written_by: Literal["updateable", "createable"] | None = None


def wanted_fields(config: Config) -> list[Wanted]:
    settings = config.crm.salesforce
    wanted = [
        Wanted(
            "Account",
            config.account_match.crm_field,
            "account_match.crm_field",
            frozenset({"string"}),
        )
    ]
    mapped = config.fields.model_dump()
    for name, spec in FIELD_SPECS.items():
        if mapped[name]:
            wanted.append(
                Wanted(
                    "Account",
                    mapped[name],
                    f"fields.{name}",
                    FITTING_TYPES[spec.kind],
                    "updateable",
                )
            )
    wanted.append(
        Wanted(
            "Account",
            settings.account_domain_field,
            "crm.salesforce.account_domain_field",
            frozenset({"url", "string"}),
        )
    )
    if settings.owner_field:
        wanted.append(
            Wanted(
                "Account",
                settings.owner_field,
                "crm.salesforce.owner_field",
                frozenset({"reference"}),
            )
        )
    if settings.champion_field:
        wanted.append(
            Wanted(
                "Contact",
                settings.champion_field,
                "crm.salesforce.champion_field",
                frozenset({"boolean", "picklist", "multipicklist", "string"}),
            )
        )
    if settings.task_key_field:  # always set; kept as a check for readers of older configs
        wanted.append(
            Wanted(
                "Task",
                settings.task_key_field,
                "crm.salesforce.task_key_field",
                frozenset({"string"}),
                "createable",
            )
        )
    return wanted


def _describe(crm: SalesforceCrm, sobject: str) -> dict[str, dict[str, Any]]:
    answer = crm.transport.call(
        f"describe_{sobject.lower()}", lambda sf: sf.restful(f"sobjects/{sobject}/describe")
    )
    return {f["name"]: f for f in (answer or {}).get("fields", [])}


def check_fields(crm: SalesforceCrm, config: Config) -> list[str]:
    """One line per problem, naming the YAML path; an empty list when everything fits."""
    wanted = wanted_fields(config)
    described: dict[str, dict[str, dict[str, Any]]] = {}
    for sobject in dict.fromkeys(w.sobject for w in wanted):
        described[sobject] = _describe(crm, sobject)
    problems = []
    for item in wanted:
        found = described[item.sobject].get(item.field)
        where = f"{item.purpose}: {item.sobject}.{item.field}"
        if found is None:
            problems.append(
                f"{where} does not exist or this user cannot see it "
                "(check the API name and field-level security)"
            )
            continue
        if item.types and found.get("type") not in item.types:
            problems.append(
                f"{where} is a {found.get('type')} field; expected one of "
                f"{', '.join(sorted(item.types))}"
            )
        if item.written_by and not found.get(item.written_by):
            problems.append(f"{where} is read-only for this user (field-level security)")
    return problems
